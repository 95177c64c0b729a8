"""Outages against the real sandbox systems: the breaker opens, refuses for free, probes, closes."""

from __future__ import annotations

import statistics
import time
from typing import Any

import anyio
import pytest

from actors import SystemActor
from actors.errors import BreakerOpen, SystemUnavailable
from actors.messages import GetCustomers, Priority
from canonical import System
from gateway.governance.systems import BreakerPolicy, RetryPolicy
from tests.chaos.world import World, ask_all, until_time
from tests.servers import free_port

pytestmark = pytest.mark.anyio

URGENT = Priority.INTERACTIVE
ONE_TRY = RetryPolicy(attempts=1, base=0.01, cap=0.02)
#: how long a trial call takes: long enough that every concurrent ask has been admitted
#: or refused before the first trial ends, even on a loaded machine
TRIAL_MS = 250


async def open_breaker(actor: SystemActor, reads: list[GetCustomers], fail_max: int) -> float:
    """Fail ``fail_max`` calls in a row; answer when the breaker will admit trial calls."""
    for n in range(fail_max):
        assert actor.breaker_state == "closed", f"opened after {n} failures, not {fail_max}"
        with pytest.raises(SystemUnavailable) as caught:
            await actor.ask(reads[n], priority=URGENT, timeout=5.0)
        assert not isinstance(caught.value, BreakerOpen)
    assert actor.breaker_state == "open"
    with pytest.raises(BreakerOpen) as refused:
        await actor.ask(reads[0], priority=URGENT)
    assert refused.value.retry_after is not None
    return anyio.current_time() + refused.value.retry_after


def tally(results: list[Any]) -> tuple[int, int]:
    """(answered, refused by the breaker); anything else fails the test."""
    answered = sum(isinstance(r, dict) for r in results)
    refused = sum(isinstance(r, BreakerOpen) for r in results)
    assert answered + refused == len(results), results
    return answered, refused


@pytest.mark.parametrize("system", list(System), ids=str)
async def test_outage_opens_the_breaker_and_open_asks_are_free(
    world: World, system: System
) -> None:
    breaker = BreakerPolicy(fail_max=3, reset_timeout=60.0, success_threshold=1, half_open_calls=1)
    sandbox = world[system]
    async with world.systems(system, breaker=breaker, retry=ONE_TRY) as systems:
        actor = systems[system]
        reads = world.reads(system, 3)
        served = await actor.ask(reads[0], priority=URGENT)  # it serves before the outage
        assert served
        before = await sandbox.requests()
        await sandbox.chaos(outage=True)

        await open_breaker(actor, reads, fail_max=3)
        assert await sandbox.requests() == before + 3
        await world.assert_serving(systems, world.others(system))

        durations: list[float] = []
        codes: set[str] = set()
        for n in range(200):
            started = time.perf_counter()
            try:
                await actor.ask(reads[n % 3], priority=URGENT)
            except BreakerOpen as exc:
                durations.append(time.perf_counter() - started)
                codes.add(exc.code)
            else:
                pytest.fail("an ask reached the system through an open breaker")
        # a behaviour bound (refused locally, no I/O), not a benchmark
        assert statistics.median(durations) < 0.001, statistics.median(durations)
        assert codes == {"SYSTEM_UNAVAILABLE"}
        assert await sandbox.requests() == before + 3  # not one of the 200 reached it
        snapshot = actor.snapshot()
        assert (snapshot.calls, snapshot.failures) == (4, 3)
        assert snapshot.breaker_transitions == {"closed->open": 1}
        await world.assert_serving(systems, world.others(system))
        # what callers can fall back to meanwhile: the last good answer, with its age
        kept = actor.last_known_good(reads[0])
        assert kept is not None
        assert kept[0] == served
        assert 0 <= kept[1] < 10


@pytest.mark.parametrize("system", list(System), ids=str)
async def test_an_unreachable_system_opens_the_breaker(world: World, system: System) -> None:
    """Connection refused (nothing listens on the port) counts like a 503."""
    breaker = BreakerPolicy(fail_max=3, reset_timeout=60.0, success_threshold=1, half_open_calls=1)
    nowhere = f"http://127.0.0.1:{free_port()}"
    async with world.systems(system, base_url=nowhere, breaker=breaker, retry=ONE_TRY) as systems:
        actor = systems[system]
        await open_breaker(actor, world.reads(system, 3), fail_max=3)
        assert actor.snapshot().failures == 3
        await world.assert_serving(systems, world.others(system))


@pytest.mark.parametrize("system", list(System), ids=str)
async def test_half_open_lets_only_the_trial_calls_through_and_closes_after_the_threshold(
    world: World, system: System
) -> None:
    breaker = BreakerPolicy(fail_max=2, reset_timeout=0.2, success_threshold=3, half_open_calls=2)
    sandbox = world[system]
    async with world.systems(system, breaker=breaker, retry=ONE_TRY, workers=8) as systems:
        actor = systems[system]
        reads = world.reads(system, 16)
        await sandbox.chaos(outage=True)
        half_open_at = await open_breaker(actor, reads, fail_max=2)
        # the system is back, slowly enough that trial calls are still in flight while the
        # other fifteen concurrent asks arrive
        await sandbox.chaos(outage=False, latency_ms=[TRIAL_MS, TRIAL_MS])
        await until_time(half_open_at)

        # two trials succeed: still half-open (3 needed); the other 14 asks were refused
        before = await sandbox.requests()
        assert tally(await ask_all(actor, reads)) == (2, 14)
        assert await sandbox.requests() == before + 2
        assert actor.breaker_state == "half_open"

        # the third trial success closes it (the fourth trial, already admitted, still runs)
        assert tally(await ask_all(actor, reads)) == (2, 14)
        assert await sandbox.requests() == before + 4
        assert actor.breaker_state == "closed"

        assert tally(await ask_all(actor, reads)) == (16, 0)
        assert await sandbox.requests() == before + 20
        assert actor.snapshot().breaker_transitions == {
            "closed->open": 1,
            "open->half_open": 1,
            "half_open->closed": 1,
        }


@pytest.mark.parametrize("system", list(System), ids=str)
async def test_a_failed_trial_reopens_the_breaker(world: World, system: System) -> None:
    breaker = BreakerPolicy(fail_max=2, reset_timeout=0.2, success_threshold=1, half_open_calls=1)
    sandbox = world[system]
    async with world.systems(system, breaker=breaker, retry=ONE_TRY, workers=8) as systems:
        actor = systems[system]
        reads = world.reads(system, 16)
        await sandbox.chaos(outage=True)
        half_open_at = await open_breaker(actor, reads, fail_max=2)
        # up again but every answer is a server error, slow enough to overlap the others
        await sandbox.chaos(outage=False, error_rate=1.0, latency_ms=[TRIAL_MS, TRIAL_MS])
        await until_time(half_open_at)

        before = await sandbox.requests()
        results = await ask_all(actor, reads)
        failed = [r for r in results if type(r) is SystemUnavailable]
        refused = [r for r in results if isinstance(r, BreakerOpen)]
        assert (len(failed), len(refused)) == (1, 15), results
        assert await sandbox.requests() == before + 1
        assert actor.breaker_state == "open"
        assert actor.snapshot().breaker_transitions["half_open->open"] == 1
        with pytest.raises(BreakerOpen) as again:  # for a fresh reset timeout
            await actor.ask(reads[0], priority=URGENT)
        assert again.value.retry_after is not None
        assert again.value.retry_after > 0
        assert await sandbox.requests() == before + 1

        # and once the system is healthy, the next trial closes it (threshold 1)
        await sandbox.chaos(error_rate=0.0, latency_ms=[0, 0])
        await until_time(anyio.current_time() + again.value.retry_after)
        assert isinstance(await actor.ask(reads[1], priority=URGENT), dict)
        assert actor.breaker_state == "closed"
        assert actor.snapshot().breaker_transitions == {
            "closed->open": 1,
            "open->half_open": 2,
            "half_open->open": 1,
            "half_open->closed": 1,
        }
