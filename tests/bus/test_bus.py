"""The bus contract, the same tests on the in-process bus and on NATS JetStream."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import anyio
import pytest

from gateway.bus import Bus, Gap, Message, open_bus
from tests.bus.nats_server import NATS_URL, nats_prefix

pytestmark = pytest.mark.anyio

Opener = Callable[..., AbstractAsyncContextManager[Bus]]


@pytest.fixture(params=["memory", "nats"])
async def opener(request: pytest.FixtureRequest) -> AsyncIterator[Opener]:
    """Opens buses of one deployment (each a replica of its own)."""
    if request.param == "memory":
        url = f"memory://test-{secrets.token_hex(4)}"
        yield lambda **kw: open_bus(url, **kw)
        return
    async with nats_prefix() as prefix:
        yield lambda **kw: open_bus(f"{NATS_URL}?prefix={prefix}", **kw)


async def take(items: AsyncIterator[Message | Gap], n: int) -> list[Message | Gap]:
    got: list[Message | Gap] = []
    with anyio.fail_after(10):
        async for item in items:
            got.append(item)
            if len(got) == n:
                break
    return got


@asynccontextmanager
async def replicas(opener: Opener, n: int, **kw: object) -> AsyncIterator[list[Bus]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(opener(**kw)) for _ in range(n)]


async def test_another_replica_receives_in_order_and_never_its_own(opener: Opener) -> None:
    async with replicas(opener, 2) as (a, b):
        async with a.subscribe("events.>") as on_a, b.subscribe("events.>") as on_b:
            for i in range(50):
                a.publish(f"events.{('erp', 'crm')[i % 2]}", str(i).encode())
            await a.flushed(within=10)
            b.publish("events.erp", b"from b")
            got = await take(on_b, 50)
            assert [m.data for m in got if isinstance(m, Message)] == [
                str(i).encode() for i in range(50)
            ]
            assert {(m.subject, m.origin) for m in got if isinstance(m, Message)} == {
                ("events.erp", a.replica),
                ("events.crm", a.replica),
            }
            # a's own fifty never come back to it: b's message is the first it sees
            (first,) = await take(on_a, 1)
            assert isinstance(first, Message)
            assert (first.data, first.origin) == (b"from b", b.replica)
        assert a.replica != b.replica
        assert b.received == 50


async def test_a_subscription_sees_only_its_subjects(opener: Opener) -> None:
    async with replicas(opener, 2) as (a, b), b.subscribe("operations") as ops:
        a.publish("events.erp", b"event")
        a.publish("operations", b"operation")
        (got,) = await take(ops, 1)
        assert isinstance(got, Message)
        assert (got.subject, got.data) == ("operations", b"operation")


async def test_since_replays_what_was_published_before_subscribing(opener: Opener) -> None:
    async with replicas(opener, 2) as (a, b):
        before = time.time() - 1
        a.publish("events.erp", b"early")
        await a.flushed(within=10)
        async with (
            b.subscribe("events.erp", since=before) as replay,
            b.subscribe("events.erp") as live,
        ):
            a.publish("events.erp", b"late")
            assert [m.data for m in await take(replay, 2) if isinstance(m, Message)] == [
                b"early",
                b"late",
            ]
            assert [m.data for m in await take(live, 1) if isinstance(m, Message)] == [b"late"]


async def test_a_subscriber_that_falls_behind_gets_a_gap(opener: Opener) -> None:
    async with replicas(opener, 1) as (a,), opener(capacity=4) as b:
        async with b.subscribe("events.>") as slow:
            for i in range(20):
                a.publish("events.erp", str(i).encode())
            await a.flushed(within=10)
            got: list[Message | Gap] = []
            with anyio.fail_after(10):
                while b.overflowed == 0:  # noqa: ASYNC110 - the pump fills the queue; no event
                    await anyio.sleep(0.01)
                async for item in slow:
                    got.append(item)
                    if isinstance(item, Gap):
                        break
                a.publish("events.crm", b"after")  # and news flows again
                async for item in slow:
                    got.append(item)
                    if isinstance(item, Message) and item.data == b"after":
                        break
        messages = [m for m in got if isinstance(m, Message)]
        assert Gap("events.erp") in got
        assert len(messages) < 21  # some were lost, and said so
        assert messages[-1].data == b"after"
        assert messages[:4] == [Message("events.erp", str(i).encode(), a.replica) for i in range(4)]


async def test_closing_sends_what_is_queued(opener: Opener) -> None:
    async with opener() as b, b.subscribe("operations") as ops:
        async with opener() as a:
            for i in range(100):
                a.publish("operations", str(i).encode())
        got = await take(ops, 100)
        assert [m.data for m in got if isinstance(m, Message)] == [
            str(i).encode() for i in range(100)
        ]


async def test_publishers_name_plain_subjects(opener: Opener) -> None:
    async with opener() as a:
        for bad in ("events.>", "events.*", "events..erp", ""):
            with pytest.raises(ValueError, match="bad bus subject"):
                a.publish(bad, b"")
