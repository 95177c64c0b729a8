"""One system's actor: coalescing, last-known-good, retries, vendor back-off, timeouts."""

from __future__ import annotations

import random

import anyio
import pytest

from actors import LastKnownGood, SystemActor
from actors._retry import full_jitter, may_retry
from actors.errors import (
    BreakerOpen,
    NotFound,
    Rejected,
    SystemTimeout,
    SystemUnavailable,
    Throttled,
)
from actors.messages import (
    EnsureSalesOrder,
    GetCustomers,
    Message,
    Priority,
    SetEntitlement,
)
from gateway.governance.systems import CachePolicy, RetryPolicy
from tests.actors.fakes import FakeConnector, Gate, policy

pytestmark = pytest.mark.anyio

URGENT = Priority.INTERACTIVE
RETRYING = RetryPolicy(attempts=3, base=0.001, cap=0.004)


def write(key: str = "op-1/step-1") -> SetEntitlement:
    return SetEntitlement(idempotency_key=key, organization_id="42", status="active")


class Flaky:
    """Fails the first ``failures`` calls with ``error``, then answers."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.left = failures
        self.error = error

    async def __call__(self, message: Message) -> object:
        if self.left:
            self.left -= 1
            raise self.error
        return "ok"


async def test_identical_concurrent_reads_share_one_upstream_call() -> None:
    gate = Gate()
    upstream = FakeConnector(gate)
    message = GetCustomers(("1000042",))
    answers: list[object] = []

    async def ask() -> None:
        answers.append(await erp.ask(message, priority=URGENT))

    async with SystemActor(upstream, policy()) as erp, anyio.create_task_group() as tg:
        for _ in range(25):
            tg.start_soon(ask)
        await gate.until_waiting(1)
        await anyio.wait_all_tasks_blocked()
        gate.opened.set()
    assert upstream.hits[message] == 1
    assert answers == [("answer", message)] * 25
    assert erp.snapshot().coalesced == 24


async def test_different_reads_and_writes_are_not_coalesced() -> None:
    gate = Gate()
    upstream = FakeConnector(gate)
    async with SystemActor(upstream, policy(workers=8)) as erp, anyio.create_task_group() as tg:
        tg.start_soon(lambda: erp.ask(GetCustomers(("1",)), priority=URGENT))
        tg.start_soon(lambda: erp.ask(GetCustomers(("2",)), priority=URGENT))
        tg.start_soon(lambda: erp.ask(write(), priority=Priority.TRANSACTIONAL))
        tg.start_soon(lambda: erp.ask(write(), priority=Priority.TRANSACTIONAL))
        await gate.until_waiting(4)
        gate.opened.set()
    assert upstream.total == 4


async def test_a_failed_shared_read_fails_every_joiner() -> None:
    gate = Gate()

    async def behaviour(message: Message) -> object:
        await gate(message)
        raise SystemUnavailable("erp", "503")

    upstream = FakeConnector(behaviour)
    errors: list[Exception] = []

    async def ask() -> None:
        try:
            await erp.ask(GetCustomers(("1",)), priority=URGENT)
        except SystemUnavailable as exc:
            errors.append(exc)

    async with SystemActor(upstream, policy()) as erp, anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(ask)
        await gate.until_waiting(1)
        await anyio.wait_all_tasks_blocked()
        gate.opened.set()
    assert len(errors) == 5
    assert upstream.total == 1


async def test_urgent_read_does_not_wait_behind_an_identical_batch_read() -> None:
    gate = Gate()
    upstream = FakeConnector(gate)
    message = GetCustomers(("1",))
    async with SystemActor(upstream, policy()) as erp, anyio.create_task_group() as tg:
        tg.start_soon(lambda: erp.ask(message, priority=Priority.BATCH))
        await gate.until_waiting(1)
        tg.start_soon(lambda: erp.ask(message, priority=URGENT))
        await gate.until_waiting(2)
        gate.opened.set()
    assert upstream.hits[message] == 2


async def test_last_known_good_keeps_successful_reads_with_their_age() -> None:
    upstream = FakeConnector()
    message = GetCustomers(("1000042",))
    async with SystemActor(upstream, policy()) as erp:
        assert erp.last_known_good(message) is None
        await erp.ask(message, priority=URGENT)
        cached = erp.last_known_good(message)
        assert cached is not None
        value, age = cached
        assert value == ("answer", message)
        assert 0 <= age < 1
        await erp.ask(write(), priority=Priority.TRANSACTIONAL)
        assert erp.last_known_good(write()) is None  # writes are never cached


async def test_last_known_good_is_still_there_when_the_system_fails() -> None:
    flaky = Flaky(0, SystemUnavailable("erp", "503"))
    upstream = FakeConnector(flaky)
    message = GetCustomers(("1",))
    async with SystemActor(upstream, policy(cache=CachePolicy(size=10, ttl=60))) as erp:
        assert await erp.ask(message, priority=URGENT) == "ok"
        flaky.left = 10
        with pytest.raises(SystemUnavailable):
            await erp.ask(message, priority=URGENT)
        cached = erp.last_known_good(message)
        assert cached is not None
        assert cached[0] == "ok"


def test_last_known_good_cache_is_a_bounded_lru_with_ttl() -> None:
    now = [100.0]
    cache = LastKnownGood(size=2, ttl=10, clock=lambda: now[0])
    cache.put("a", 1)
    cache.put("b", 2)
    now[0] += 4
    assert cache.get("a") == (1, 4.0)  # touching "a" makes "b" the least recent
    cache.put("c", 3)
    assert cache.get("b") is None
    assert len(cache) == 2
    now[0] += 7
    assert cache.get("a") is None  # 11 s old: past the TTL
    assert cache.get("c") == (3, 7.0)


async def test_reads_are_retried_with_backoff_until_they_succeed() -> None:
    upstream = FakeConnector(Flaky(2, SystemUnavailable("erp", "503")))
    async with SystemActor(upstream, policy(retry=RETRYING)) as erp:
        assert await erp.ask(GetCustomers(("1",)), priority=URGENT) == "ok"
        assert upstream.total == 3
        assert erp.snapshot().retries == 2


async def test_reads_give_up_after_the_configured_attempts() -> None:
    upstream = FakeConnector(Flaky(10, SystemUnavailable("erp", "503")))
    async with SystemActor(upstream, policy(retry=RETRYING)) as erp:
        with pytest.raises(SystemUnavailable):
            await erp.ask(GetCustomers(("1",)), priority=URGENT)
        assert upstream.total == 3


@pytest.mark.parametrize("error", [Rejected("erp", "invalid"), NotFound("erp", "missing")])
async def test_reads_refused_by_the_system_are_not_retried(error: Exception) -> None:
    upstream = FakeConnector(Flaky(10, error))
    async with SystemActor(upstream, policy(retry=RETRYING)) as erp:
        with pytest.raises(type(error)):
            await erp.ask(GetCustomers(("1",)), priority=URGENT)
        assert upstream.total == 1


async def test_writes_are_never_retried_in_the_actor() -> None:
    upstream = FakeConnector(Flaky(1, SystemUnavailable("erp", "503")))
    async with SystemActor(upstream, policy(retry=RETRYING)) as erp:
        with pytest.raises(SystemUnavailable):
            await erp.ask(write(), priority=Priority.TRANSACTIONAL)
        assert upstream.total == 1  # the outbox dispatcher owns write retries
        assert await erp.ask(write(), priority=Priority.TRANSACTIONAL) == "ok"


async def test_throttle_that_says_do_not_retry_is_not_retried() -> None:
    stripe_no = Throttled("billing", "rate_limit, Stripe-Should-Retry: false", status=429)
    stripe_no.retryable = False  # type: ignore[misc]
    upstream = FakeConnector(Flaky(10, stripe_no))
    async with SystemActor(upstream, policy(retry=RETRYING)) as erp:
        with pytest.raises(Throttled):
            await erp.ask(GetCustomers(("1",)), priority=URGENT)
        assert upstream.total == 1


def test_full_jitter_spreads_waits_below_the_exponential_cap() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (9, 0.5)]:
        waits = [full_jitter(attempt, base=0.1, cap=0.5, rng=rng) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8  # spread over the whole range,
        assert min(waits) < ceiling * 0.2  # not bunched at the top


def test_only_reads_with_retryable_errors_may_be_retried() -> None:
    read = GetCustomers(("1",))
    order = EnsureSalesOrder(
        idempotency_key="k", customer_id="1", purchase_order="PO", items=(("M", 1),)
    )
    assert may_retry(read, SystemUnavailable("erp", "503"))
    assert may_retry(read, SystemTimeout("erp", "slow"))
    assert not may_retry(read, BreakerOpen("erp", "open"))
    assert not may_retry(read, Rejected("erp", "bad"))
    assert not may_retry(read, KeyError("bug"))
    assert not may_retry(order, SystemUnavailable("erp", "503"))


async def test_retry_after_pauses_every_outbound_call() -> None:
    calls: list[float] = []
    first = True

    async def behaviour(message: Message) -> object:
        nonlocal first
        calls.append(anyio.current_time())
        if first:
            first = False
            raise Throttled("support", "429", status=429, retry_after=0.2)
        return "ok"

    upstream = FakeConnector(behaviour)
    async with SystemActor(upstream, policy(retry=RETRYING)) as erp:
        # a write is not retried, but its Retry-After holds the next call, a read
        with pytest.raises(Throttled):
            await erp.ask(write(), priority=Priority.TRANSACTIONAL)
        assert await erp.ask(GetCustomers(("1",)), priority=URGENT) == "ok"
    assert calls[1] - calls[0] >= 0.2


async def test_retry_after_past_the_deadline_answers_throttled_without_calling() -> None:
    upstream = FakeConnector(Flaky(1, Throttled("erp", "503", status=503, retry_after=30)))
    async with SystemActor(upstream, policy(retry=RETRYING)) as erp:
        with pytest.raises(Throttled):
            await erp.ask(GetCustomers(("1",)), priority=URGENT, timeout=1)
        with pytest.raises(Throttled, match="back off") as caught:
            await erp.ask(GetCustomers(("2",)), priority=URGENT, timeout=1)
        assert caught.value.retry_after is not None
        assert caught.value.retry_after > 20
        assert upstream.total == 1


async def test_per_call_timeout_cancels_the_upstream_call() -> None:
    async def hang(message: Message) -> object:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    upstream = FakeConnector(hang)
    async with SystemActor(upstream, policy(timeout=0.05)) as erp:
        with pytest.raises(SystemTimeout, match="per-call timeout") as caught:
            await erp.ask(GetCustomers(("1",)), priority=URGENT, timeout=5)
        assert caught.value.code == "SYSTEM_TIMEOUT"
        assert upstream.cancelled == 1
        assert erp.snapshot().failures == 1


async def test_the_ask_deadline_cancels_the_upstream_call_and_counts() -> None:
    async def hang(message: Message) -> object:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    upstream = FakeConnector(hang)
    async with SystemActor(upstream, policy(timeout=5)) as erp:
        with pytest.raises(SystemTimeout):
            await erp.ask(write(), priority=Priority.TRANSACTIONAL, timeout=0.05)
        await anyio.wait_all_tasks_blocked()
        assert upstream.cancelled == 1
        assert erp.snapshot().failures == 1


async def test_state_and_snapshot_report_what_query_systems_needs() -> None:
    upstream = FakeConnector()
    async with SystemActor(upstream, policy()) as erp:
        assert erp.state.healthy is None
        assert erp.state.p50_latency_ms is None
        await erp.ask(GetCustomers(("1",)), priority=URGENT)
        assert await erp.ping() is True
        state = erp.state
        assert state.healthy is True
        assert state.breaker == "closed"
        assert state.queue_depth == 0
        assert state.p50_latency_ms is not None
        snap = erp.snapshot()
        assert snap.calls == 1
        assert snap.latency_count == 1
        assert snap.latency_buckets[-1] == (float("inf"), 1)
        assert set(snap.mailbox_depth) == {"interactive", "transactional", "sync", "batch"}
    assert upstream.opened
    assert upstream.closed


async def test_health_watch_pings_on_start() -> None:
    upstream = FakeConnector()
    async with SystemActor(upstream, policy(health_interval=60)) as erp:
        await anyio.wait_all_tasks_blocked()
        assert upstream.pings == 1
        assert erp.state.healthy is True
