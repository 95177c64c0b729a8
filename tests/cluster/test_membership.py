"""Replicas share each vendor quota: the shares of the live replicas never sum above 1.

Against the real NATS server (127.0.0.1:4222, started by .ci/run); every test uses a bucket
of its own. A replica that dies is a child process killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable

import anyio
import nats
import pytest

from gateway.cluster import Membership

NATS_URL = os.environ.get("CROSSWALK_TEST_NATS", "nats://127.0.0.1:4222")
FAST = {"heartbeat": 0.2, "ttl": 1.0}

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def bucket() -> AsyncIterator[str]:
    name = f"cw_test_{uuid.uuid4().hex[:10]}"
    try:
        nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
    except Exception as exc:  # the suite needs the server; say so instead of skipping
        pytest.fail(f"NATS is not reachable at {NATS_URL} ({exc}); .ci/run starts it")
    yield name
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):  # never created
            await nc.jetstream().delete_key_value(name)
    finally:
        await nc.close()


async def _until(check: Callable[[], bool], within: float = 10.0) -> None:
    with anyio.fail_after(within):
        while not check():  # noqa: ASYNC110 - heartbeats change it; there is no event
            await anyio.sleep(0.02)


class Watch:
    """Samples the shares of some replicas; remembers the largest sum it ever saw."""

    def __init__(self, *replicas: Membership) -> None:
        self.replicas = list(replicas)
        self.max_sum = 0.0

    async def run(self) -> None:
        while True:
            self.max_sum = max(self.max_sum, sum(r.share for r in self.replicas))
            await anyio.sleep(0.01)


async def test_a_replica_alone_spends_nothing_until_registered_then_all(bucket: str) -> None:
    a = Membership(NATS_URL, bucket=bucket, **FAST)
    async with anyio.create_task_group() as tg:
        await tg.start(a.run)
        assert a.share == 0.0
        await _until(lambda: a.share == 1.0)
        assert a.replicas == 1
        tg.cancel_scope.cancel()
    assert a.share == 0.0


async def test_a_second_replica_halves_the_share_and_the_sum_never_exceeds_one(
    bucket: str,
) -> None:
    a = Membership(NATS_URL, bucket=bucket, **FAST)
    b = Membership(NATS_URL, bucket=bucket, **FAST)
    watch = Watch(a, b)
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch.run)
        await tg.start(a.run)
        await _until(lambda: a.share == 1.0)
        async with anyio.create_task_group() as inner:
            await inner.start(b.run)
            await _until(lambda: a.share == 0.5 and b.share == 0.5)
            assert (a.replicas, b.replicas) == (2, 2)
            inner.cancel_scope.cancel()  # b leaves cleanly: stops spending, deletes its key
        await _until(lambda: a.share == 1.0)
        tg.cancel_scope.cancel()
    assert watch.max_sum <= 1.0


CHILD = """
import sys, anyio
from gateway.cluster import Membership
async def main():
    m = Membership(sys.argv[1], bucket=sys.argv[2], heartbeat=0.2, ttl=1.0,
                   on_change=lambda s: print(s, flush=True))
    await m.run()
anyio.run(main)
"""


async def test_a_killed_replica_share_returns_only_after_its_key_expires(bucket: str) -> None:
    a = Membership(NATS_URL, bucket=bucket, **FAST)
    async with anyio.create_task_group() as tg:
        await tg.start(a.run)
        await _until(lambda: a.share == 1.0)
        async with await anyio.open_process(
            [sys.executable, "-c", CHILD, NATS_URL, bucket]
        ) as child:
            assert child.stdout is not None
            # the child spends only once a has lowered its share and said so
            line = await anext(aiter(child.stdout))
            assert float(line.decode()) == 0.5
            assert a.share == 0.5
            child.send_signal(signal.SIGKILL)  # no goodbye: its key stays until the ttl
            killed = anyio.current_time()
        await _until(lambda: a.share == 1.0)
        # the dead replica's half was never spent twice: a waited for the expiry
        assert anyio.current_time() - killed >= FAST["ttl"] - FAST["heartbeat"]
        tg.cancel_scope.cancel()


async def test_a_newcomer_waits_for_a_slow_replica_to_make_room(bucket: str) -> None:
    """No timing assumption: a replica whose heartbeat is 10x slower still lowers its share
    before the newcomer spends anything."""
    slow = Membership(NATS_URL, bucket=bucket, heartbeat=1.0, ttl=5.0)
    fast = Membership(NATS_URL, bucket=bucket, heartbeat=0.05, ttl=5.0)
    watch = Watch(slow, fast)
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch.run)
        await tg.start(slow.run)
        await _until(lambda: slow.share == 1.0)
        await tg.start(fast.run)
        await _until(lambda: fast.share == 0.5)
        assert slow.share == 0.5
        tg.cancel_scope.cancel()
    assert watch.max_sum <= 1.0


async def test_nats_unreachable_means_no_share(bucket: str) -> None:
    a = Membership("nats://127.0.0.1:1", bucket=bucket, **FAST)
    async with anyio.create_task_group() as tg:
        await tg.start(a.run)
        await anyio.sleep(1.0)
        assert a.share == 0.0
        tg.cancel_scope.cancel()


def test_settings_that_would_expire_live_replicas_are_refused() -> None:
    with pytest.raises(ValueError, match="ttl"):
        Membership(NATS_URL, heartbeat=1.0, ttl=2.0)
