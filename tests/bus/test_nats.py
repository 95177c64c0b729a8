"""What only the NATS bus has: a server to miss at start, and to lose and get back."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import nats
import pytest

from gateway.bus import BusError, Gap, Message, open_bus
from gateway.bus.nats import NatsBus
from tests.bus.nats_server import NATS_URL, nats_prefix, private_server
from tests.servers import free_port

pytestmark = pytest.mark.anyio


async def test_an_unreachable_server_stops_start_up() -> None:
    bus = NatsBus(f"nats://127.0.0.1:{free_port()}", timeout=1.0)
    with pytest.raises(BusError, match="cannot reach the bus"):
        async with bus:
            pass


async def test_the_streams_are_bounded() -> None:
    async with nats_prefix() as prefix, open_bus(f"{NATS_URL}?prefix={prefix}") as bus:
        assert isinstance(bus, NatsBus)
        nc = await nats.connect(NATS_URL)
        try:
            js = nc.jetstream()
            for first in ("events", "operations"):
                info = await js.stream_info(bus.stream_name(first))
                assert info.config.max_age == bus.max_age > 0
                assert info.config.max_msgs == bus.max_msgs > 0
                assert info.config.max_bytes == bus.max_bytes > 0
        finally:
            await nc.close()


async def test_a_server_restart_loses_nothing_the_queue_held(tmp_path: Path) -> None:
    """Publishes made while the server is down wait in the queue and arrive after it is
    back; past the queue's capacity they are dropped and the receivers get a gap."""
    with private_server(tmp_path / "nats") as server:
        await server.started()
        async with (
            open_bus(server.url, capacity=8) as a,
            open_bus(server.url) as b,
            b.subscribe("events.>") as on_b,
        ):
            a.publish("events.erp", b"before")
            with anyio.fail_after(10):
                first = await anext(on_b)
            assert isinstance(first, Message)
            assert first.data == b"before"

            server.stop()
            with anyio.fail_after(10):
                while a.connected:  # noqa: ASYNC110 - the client notices on its own time
                    await anyio.sleep(0.05)
            for i in range(20):
                a.publish("events.crm", str(i).encode())
            assert a.dropped > 0  # the queue held 8 (one of them in the sender's hands)

            server.start()
            await server.started()
            await a.flushed(within=20)
            got: list[Message | Gap] = []
            with anyio.fail_after(20):
                async for item in on_b:  # the queued messages, and a gap for the rest
                    got.append(item)
                    if Gap("events.crm") in got and len(got) == 20 - a.dropped + 1:
                        break
            messages = [m.data for m in got if isinstance(m, Message)]
            assert messages == [str(i).encode() for i in range(20 - a.dropped)]

            a.publish("events.erp", b"after")
            with anyio.fail_after(10):
                last = await anext(on_b)
            assert isinstance(last, Message)
            assert last.data == b"after"


async def test_a_server_that_lost_its_streams_gets_them_back_and_says_so(tmp_path: Path) -> None:
    """A server restarted without its storage: the streams are made again, and the
    subscribers get a gap (what they had seen is gone) and then what follows."""
    with private_server(tmp_path / "nats") as server:
        await server.started()
        async with (
            open_bus(server.url) as a,
            open_bus(server.url) as b,
            b.subscribe("operations") as on_b,
        ):
            for i in range(3):
                a.publish("operations", str(i).encode())
            with anyio.fail_after(10):
                assert [(await anext(on_b)) for _ in range(3)] == [
                    Message("operations", str(i).encode(), a.replica) for i in range(3)
                ]

            server.stop()
            shutil.rmtree(tmp_path / "nats")
            server.start()
            await server.started()
            for i in range(5):  # more than b saw before: the sequence alone would not tell
                a.publish("operations", f"after {i}".encode())
            got: list[Message | Gap] = []
            with anyio.fail_after(20):
                async for item in on_b:
                    got.append(item)
                    if len(got) == 6:
                        break
            assert got == [
                Gap("operations"),
                *(Message("operations", f"after {i}".encode(), a.replica) for i in range(5)),
            ]
