"""The circuit breaker around one system: what trips it, open, half-open, closing again."""

from __future__ import annotations

import time

import anyio
import pytest

from actors import SystemActor
from actors.errors import (
    BreakerOpen,
    MalformedResponse,
    NotFound,
    Rejected,
    SystemTimeout,
    SystemUnavailable,
    Throttled,
)
from actors.messages import GetCustomers, Message, Priority
from gateway.governance.systems import BreakerPolicy, RetryPolicy
from tests.actors.fakes import FakeConnector, Gate, policy, until

pytestmark = pytest.mark.anyio

URGENT = Priority.INTERACTIVE


def msg(n: int) -> GetCustomers:
    return GetCustomers((str(n),))


class Switch:
    """Upstream that fails with ``error`` while ``failing`` is set, else answers."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.failing = True

    async def __call__(self, message: Message) -> object:
        if self.failing:
            raise self.error
        return "ok"


async def trip(actor: SystemActor, n: int) -> None:
    for i in range(n):
        with pytest.raises(SystemUnavailable):
            await actor.ask(msg(i), priority=URGENT)


async def test_opens_after_fail_max_counted_failures() -> None:
    upstream = FakeConnector(Switch(SystemUnavailable("erp", "503 from upstream", status=503)))
    async with SystemActor(upstream, policy(breaker=BreakerPolicy(fail_max=3))) as erp:
        await trip(erp, 2)
        assert erp.breaker_state == "closed"
        await trip(erp, 1)
        assert erp.breaker_state == "open"
        assert erp.snapshot().breaker_transitions == {"closed->open": 1}
        assert erp.snapshot().failures == 3


@pytest.mark.parametrize(
    "error",
    [
        Rejected("erp", "invalid"),
        NotFound("erp", "missing"),
        Throttled("erp", "slow down"),
    ],
)
async def test_refusals_do_not_count_as_failures(error: Exception) -> None:
    upstream = FakeConnector(Switch(error))
    async with SystemActor(upstream, policy(breaker=BreakerPolicy(fail_max=2))) as erp:
        for i in range(5):
            with pytest.raises(type(error)):
                await erp.ask(msg(i), priority=URGENT)
        assert erp.breaker_state == "closed"
        assert erp.snapshot().failures == 0


@pytest.mark.parametrize(
    "error", [SystemTimeout("erp", "slow"), MalformedResponse("erp", "not JSON")]
)
async def test_timeouts_and_garbage_count_as_failures(error: Exception) -> None:
    upstream = FakeConnector(Switch(error))
    async with SystemActor(upstream, policy(breaker=BreakerPolicy(fail_max=2))) as erp:
        for i in range(2):
            with pytest.raises(type(error)):
                await erp.ask(msg(i), priority=URGENT)
        assert erp.breaker_state == "open"


async def test_success_resets_the_consecutive_failure_count() -> None:
    switch = Switch(SystemUnavailable("erp", "503"))
    upstream = FakeConnector(switch)
    async with SystemActor(upstream, policy(breaker=BreakerPolicy(fail_max=3))) as erp:
        await trip(erp, 2)
        switch.failing = False
        await erp.ask(msg(100), priority=URGENT)
        switch.failing = True
        await trip(erp, 2)
        assert erp.breaker_state == "closed"


async def test_open_breaker_answers_at_once_without_calling_or_retrying() -> None:
    upstream = FakeConnector(Switch(SystemUnavailable("erp", "503")))
    retrying = RetryPolicy(attempts=5, base=0.001, cap=0.001)
    async with SystemActor(
        upstream, policy(breaker=BreakerPolicy(fail_max=1), retry=retrying)
    ) as erp:
        with pytest.raises(SystemUnavailable):
            await erp.ask(msg(0), priority=URGENT)
        assert erp.breaker_state == "open"
        hits = upstream.total
        retries = erp.snapshot().retries
        timings = []
        for i in range(200):
            started = time.perf_counter()
            with pytest.raises(BreakerOpen) as caught:
                await erp.ask(msg(i), priority=URGENT)
            timings.append(time.perf_counter() - started)
        assert caught.value.code == "SYSTEM_UNAVAILABLE"
        assert caught.value.retry_after is not None
        assert upstream.total == hits  # nothing reached upstream
        assert erp.snapshot().retries == retries  # and no retry attempts were spent
        timings.sort()
        assert timings[len(timings) // 2] < 0.001  # well under a millisecond at p50


async def half_open(erp: SystemActor) -> None:
    await until(lambda: erp._breaker.seconds_until_half_open() == 0)


async def test_half_open_admits_exactly_the_trial_calls_under_concurrency() -> None:
    gate = Gate()
    switch = Switch(SystemUnavailable("erp", "503"))

    async def behaviour(message: Message) -> object:
        if switch.failing:
            raise switch.error
        return await gate(message)

    upstream = FakeConnector(behaviour)
    breaker = BreakerPolicy(fail_max=1, reset_timeout=0.05, success_threshold=2, half_open_calls=2)
    refused = 0
    answered = 0

    async def caller(n: int) -> None:
        nonlocal refused, answered
        try:
            await erp.ask(msg(1000 + n), priority=URGENT)
            answered += 1
        except BreakerOpen:
            refused += 1

    async with SystemActor(upstream, policy(breaker=breaker, workers=64)) as erp:
        await trip(erp, 1)
        switch.failing = False
        await half_open(erp)
        hits = upstream.total
        async with anyio.create_task_group() as tg:
            for n in range(50):
                tg.start_soon(caller, n)
            await gate.until_waiting(2)
            await anyio.wait_all_tasks_blocked()
            assert upstream.total - hits == 2  # exactly the two trial calls went out
            assert refused == 48
            assert erp.breaker_state == "half_open"
            gate.opened.set()
        assert answered == 2
        assert erp.breaker_state == "closed"  # two successes = success_threshold
        assert erp.snapshot().breaker_transitions == {
            "closed->open": 1,
            "open->half_open": 1,
            "half_open->closed": 1,
        }


async def test_success_threshold_needs_that_many_trial_successes() -> None:
    switch = Switch(SystemUnavailable("erp", "503"))
    upstream = FakeConnector(switch)
    breaker = BreakerPolicy(fail_max=1, reset_timeout=0.05, success_threshold=3, half_open_calls=1)
    async with SystemActor(upstream, policy(breaker=breaker)) as erp:
        await trip(erp, 1)
        switch.failing = False
        await half_open(erp)
        await erp.ask(msg(1), priority=URGENT)
        assert erp.breaker_state == "half_open"
        await erp.ask(msg(2), priority=URGENT)
        assert erp.breaker_state == "half_open"
        await erp.ask(msg(3), priority=URGENT)
        assert erp.breaker_state == "closed"


async def test_failed_trial_reopens_the_breaker() -> None:
    upstream = FakeConnector(Switch(SystemUnavailable("erp", "still down")))
    breaker = BreakerPolicy(fail_max=2, reset_timeout=0.05, success_threshold=1, half_open_calls=1)
    async with SystemActor(upstream, policy(breaker=breaker)) as erp:
        await trip(erp, 2)
        await half_open(erp)
        hits = upstream.total
        with pytest.raises(SystemUnavailable) as caught:
            await erp.ask(msg(1), priority=URGENT)
        assert not isinstance(caught.value, BreakerOpen)  # the trial really ran
        assert upstream.total == hits + 1
        assert erp.breaker_state == "open"
        assert erp.snapshot().breaker_transitions["half_open->open"] == 1


async def test_stale_outcome_from_before_opening_is_ignored() -> None:
    gate = Gate()
    fail = anyio.Event()

    async def behaviour(message: Message) -> object:
        assert isinstance(message, GetCustomers)
        if message.ids == ("slow",):
            return await gate(message)
        if not fail.is_set():
            return "ok"
        raise SystemUnavailable("erp", "503")

    upstream = FakeConnector(behaviour)
    async with SystemActor(upstream, policy(breaker=BreakerPolicy(fail_max=1))) as erp:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: erp.ask(GetCustomers(("slow",)), priority=URGENT))
            await gate.until_waiting(1)
            fail.set()
            await trip(erp, 1)
            assert erp.breaker_state == "open"
            gate.opened.set()  # the slow call admitted while closed now succeeds
        assert erp.breaker_state == "open"
