"""The actor in front of a real HTTP upstream on a loopback port (aiohttp server)."""

from __future__ import annotations

import anyio
import pytest

from actors import SystemActor
from actors.errors import BreakerOpen, SystemTimeout, SystemUnavailable, Throttled
from actors.messages import GetCustomers, Priority
from gateway.governance.systems import BreakerPolicy, RatePolicy, RetryPolicy
from tests.actors.fakes import Upstream, http_connector, policy, until

pytestmark = pytest.mark.anyio

URGENT = Priority.INTERACTIVE


async def test_reads_go_through_to_the_upstream() -> None:
    async with Upstream() as upstream, SystemActor(http_connector(upstream.url), policy()) as erp:
        answer = await erp.ask(GetCustomers(("1", "2")), priority=URGENT)
    assert answer == {"1": {"id": "1"}, "2": {"id": "2"}}
    assert upstream.hits == 1


async def test_outage_opens_the_breaker_and_then_no_request_reaches_the_system() -> None:
    # long enough that the 50 refusals below surely fall inside it, even on a busy machine
    breaker = BreakerPolicy(fail_max=3, reset_timeout=0.5, success_threshold=2, half_open_calls=1)
    async with (
        Upstream() as upstream,
        SystemActor(http_connector(upstream.url), policy(breaker=breaker)) as erp,
    ):
        upstream.mode = "503"
        for n in range(3):
            with pytest.raises(SystemUnavailable):
                await erp.ask(GetCustomers((str(n),)), priority=URGENT)
        assert erp.breaker_state == "open"
        for n in range(50):
            with pytest.raises(BreakerOpen):
                await erp.ask(GetCustomers((str(n),)), priority=URGENT)
        assert upstream.hits == 3
        # the system recovers; after the reset timeout two trials close the breaker
        upstream.mode = "ok"
        await until(lambda: erp._breaker.seconds_until_half_open() == 0)
        await erp.ask(GetCustomers(("a",)), priority=URGENT)
        assert erp.breaker_state == "half_open"
        await erp.ask(GetCustomers(("b",)), priority=URGENT)
        assert erp.breaker_state == "closed"
        assert upstream.hits == 5


async def test_429_with_retry_after_backs_off_then_succeeds() -> None:
    retry = RetryPolicy(attempts=3, base=0.001, cap=0.002)
    async with (
        Upstream() as upstream,
        SystemActor(http_connector(upstream.url), policy(retry=retry)) as erp,
    ):
        upstream.mode = "429"
        upstream.retry_after = "0.2"

        async def recover() -> None:
            await until(lambda: upstream.hits >= 1)
            upstream.mode = "ok"

        async with anyio.create_task_group() as tg:
            tg.start_soon(recover)
            assert await erp.ask(GetCustomers(("1",)), priority=URGENT) == {"1": {"id": "1"}}
    assert upstream.hits == 2
    assert upstream.times[1] - upstream.times[0] >= 0.2


def assert_within_rate(times: list[float], rate: RatePolicy, jitter: float) -> None:
    """In any window, at most the burst plus what the rate refills in that window."""
    times = sorted(times)
    for i, start in enumerate(times):
        for j in range(i + 1, len(times)):
            allowed = rate.burst + rate.per_second * (times[j] - start + jitter) + 1e-6
            assert j - i + 1 <= allowed, (i, j, times[j] - start)


@pytest.mark.parametrize("fan_out", [False, True], ids=["one-call-per-read", "fan-out"])
async def test_policy_rate_is_never_exceeded(fan_out: bool) -> None:
    """The rate holds per vendor call, also when one read fans out into several calls."""
    rate = RatePolicy(per_second=20, burst=3)
    reads, per_read = (15, 1) if not fan_out else (5, 3)
    calls = reads * per_read
    async with Upstream() as upstream:
        connector = http_connector(upstream.url, fan_out=fan_out)
        async with (
            SystemActor(connector, policy(rate=rate, workers=16)) as erp,
            anyio.create_task_group() as tg,
        ):
            for n in range(reads):
                ids = tuple(f"{n}-{k}" for k in range(per_read))
                tg.start_soon(lambda ids=ids: erp.ask(GetCustomers(ids), priority=URGENT))
    # every call reached the upstream once: none went around the limiter
    assert len(upstream.times) == len(connector.sent) == calls
    # as the calls got their tokens: the leaky bucket's promise, give or take the time the
    # OS may stall this process between taking a token and noting the time (measured:
    # tens of ms on a loaded two-core machine); without the limiter all would go at once
    assert_within_rate(connector.sent, rate, jitter=0.1)
    sent = sorted(connector.sent)
    assert sent[-1] - sent[0] >= (calls - rate.burst - 1) / rate.per_second - 0.1


async def test_waiting_for_rate_tokens_past_the_budget_is_throttled_not_a_failure() -> None:
    rate = RatePolicy(per_second=2, burst=1)  # the second call of a read waits 0.5 s
    breaker = BreakerPolicy(fail_max=1, reset_timeout=60)
    async with (
        Upstream() as upstream,
        SystemActor(
            http_connector(upstream.url, fan_out=True),
            policy(rate=rate, breaker=breaker, timeout=0.2),
        ) as erp,
    ):
        with pytest.raises(Throttled, match="rate limit"):
            await erp.ask(GetCustomers(("1", "2")), priority=URGENT)
        assert erp.breaker_state == "closed"  # our own limiter was slow, not the system
        assert upstream.hits == 1


async def test_deadline_cancels_the_http_call_upstream() -> None:
    async with (
        Upstream() as upstream,
        SystemActor(http_connector(upstream.url), policy(timeout=0.1)) as erp,
    ):
        upstream.mode = "hang"
        with pytest.raises(SystemTimeout):
            await erp.ask(GetCustomers(("1",)), priority=URGENT)
        with anyio.fail_after(5):
            await upstream.disconnected.wait()  # the server saw the client go away


async def test_throttled_storm_does_not_open_the_breaker() -> None:
    breaker = BreakerPolicy(fail_max=2, reset_timeout=60)
    async with (
        Upstream() as upstream,
        SystemActor(http_connector(upstream.url), policy(breaker=breaker)) as erp,
    ):
        upstream.mode = "429"
        upstream.retry_after = "0.01"
        for n in range(4):
            with pytest.raises(Throttled):
                await erp.ask(GetCustomers((str(n),)), priority=URGENT)
        assert erp.breaker_state == "closed"
