"""Slow systems against the caller's deadline, and malformed answers, on the real sandboxes."""

from __future__ import annotations

import anyio
import pytest

from actors.errors import BreakerOpen, MalformedResponse, SystemTimeout
from actors.messages import Priority
from canonical import System
from gateway.governance.systems import BreakerPolicy, RetryPolicy
from tests.chaos.world import World, until

pytestmark = pytest.mark.anyio

URGENT = Priority.INTERACTIVE
ONE_TRY = RetryPolicy(attempts=1, base=0.01, cap=0.02)
#: how long past its deadline a caller may be held: scheduling slack on a loaded 2-core
#: machine, still far below the 2 s the system takes to answer
MARGIN = 0.25


@pytest.mark.parametrize("system", list(System), ids=str)
async def test_latency_past_the_deadline_times_out_and_cancels_the_call(
    world: World, system: System
) -> None:
    sandbox = world[system]
    # one worker: if the timed-out call were still running, nothing else could be served
    async with world.systems(system, workers=1, retry=ONE_TRY, timeout=5.0) as systems:
        actor = systems[system]
        slow, quick = world.reads(system, 2)
        await sandbox.chaos(latency_ms=[2000, 2000])
        before = await sandbox.requests()

        deadline = 0.3
        started = anyio.current_time()
        with pytest.raises(SystemTimeout) as caught:
            await actor.ask(slow, priority=URGENT, timeout=deadline)
        held = anyio.current_time() - started
        assert caught.value.code == "SYSTEM_TIMEOUT"
        assert deadline <= held < deadline + MARGIN
        await until(lambda: actor.snapshot().in_flight == 0, within=MARGIN)
        assert await sandbox.requests() == before + 1

        # the worker is free at once, long before the slow answer would have come
        await sandbox.chaos(latency_ms=[0, 0])
        with anyio.fail_after(0.5):
            assert isinstance(await actor.ask(quick, priority=URGENT), dict)
        snapshot = actor.snapshot()
        assert (snapshot.calls, snapshot.failures) == (2, 1)  # a timeout counts against it
        await world.assert_serving(systems, world.others(system))


@pytest.mark.parametrize("system", list(System), ids=str)
async def test_malformed_bodies_are_malformed_response_and_count_as_breaker_failures(
    world: World, system: System
) -> None:
    breaker = BreakerPolicy(fail_max=3, reset_timeout=60.0, success_threshold=1, half_open_calls=1)
    sandbox = world[system]
    async with world.systems(system, breaker=breaker, retry=ONE_TRY) as systems:
        actor = systems[system]
        reads = world.reads(system, 3)
        await sandbox.chaos(malformed_rate=1.0)
        before = await sandbox.requests()
        for read in reads:
            assert actor.breaker_state == "closed"
            with pytest.raises(MalformedResponse) as caught:
                await actor.ask(read, priority=URGENT)
            assert caught.value.code == "SYSTEM_UNAVAILABLE"
        assert actor.breaker_state == "open"
        with pytest.raises(BreakerOpen):
            await actor.ask(reads[0], priority=URGENT)
        assert await sandbox.requests() == before + 3
        assert actor.snapshot().failures == 3
        await world.assert_serving(systems, world.others(system))
