"""SLO burn rates: call counters over a window, flow success rates from the store."""

from __future__ import annotations

from typing import Any

import pytest

from actors import StatsSnapshot
from canonical import System
from gateway.governance.slo import FlowObjectives, SloPolicy, SystemObjectives
from gateway.observability.slo import CallCounters, evaluate, system_slos
from gateway.store.records import OperationStatus

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _snapshot(system: str, calls: int, failures: int) -> StatsSnapshot:
    return StatsSnapshot(
        system=system, calls=calls, failures=failures, retries=0, coalesced=0, expired=0,
        restarts=0, shed={}, mailbox_depth={}, in_flight=0, breaker_state="closed",
        breaker_transitions={}, latency_buckets=(), latency_sum=0.0, latency_count=0,
    )  # fmt: skip


def test_burn_rate_is_the_window_error_rate_over_the_budget() -> None:
    clock = Clock()
    counts = {"erp": (0, 0)}
    counters = CallCounters(
        lambda: [_snapshot(s, *c) for s, c in counts.items()], every=5.0, clock=clock
    )
    policy = SloPolicy(systems={System.ERP: SystemObjectives(availability=0.99)})
    # an hour of clean traffic, then 5 minutes with 10 % errors
    for minute in range(60):
        clock.now = minute * 60.0
        counts["erp"] = (minute * 100, 0)
        counters.sample()
    clock.now = 3600.0
    counts["erp"] = (6000, 0)
    counters.sample()
    clock.now = 3900.0
    counts["erp"] = (6100, 10)
    assert counters.window("erp", 300) == (100, 10)
    (availability,) = system_slos(policy, counters, System.ERP, None)
    assert availability.burn_rates["5m"] == pytest.approx(10.0)  # 10 % errors / 1 % budget
    assert availability.burn_rates["1h"] == pytest.approx(
        10 / 5600 / 0.01, abs=0.001
    )  # since minute 5
    assert availability.ok  # 99.8 % over the hour


async def _finished(store: Any, op_id: str, kind: str, status: OperationStatus) -> None:
    async with store.transaction() as tx:
        await tx.create_operation(
            id=op_id, kind=kind, correlation_id=f"c-{op_id}", client_id="demo-portal",
            aggregate_key="cw_1", input={},
        )  # fmt: skip
        await tx.update_operation(op_id, status=status)


async def test_flow_success_rate_and_consistency_come_from_the_store(store: Any) -> None:
    for index in range(3):
        await _finished(store, f"op_ok{index}", "onboardCustomer", OperationStatus.SUCCEEDED)
    await _finished(store, "op_bad", "onboardCustomer", OperationStatus.NEEDS_ATTENTION)
    policy = SloPolicy(flows={"onboardCustomer": FlowObjectives(success_rate=0.5)}, max_findings=0)
    flow, data = await evaluate(policy, store, None, {})
    assert (flow.name, flow.value, flow.ok) == ("onboardCustomer", 0.75, True)
    assert flow.burn_rates == {"5m": 0.5, "1h": 0.5}  # 25 % errors / 50 % budget
    assert (data.objective, data.value, data.ok) == ("max_findings", None, True)


def test_recovery_time_runs_from_the_breaker_opening_to_its_closing() -> None:
    from actors._stats import ActorStats

    stats = ActorStats("crm")
    snap = lambda: stats.snapshot(  # noqa: E731
        breaker_state="closed", mailbox_depth={}, in_flight=0
    )
    assert snap().open_for_seconds is None
    assert snap().last_recovery_seconds is None
    stats.transition("closed", "open")
    stats.transition("open", "half_open")
    stats.transition("half_open", "open")  # a failed trial: the same outage
    assert snap().open_for_seconds is not None
    stats.transition("open", "half_open")
    stats.transition("half_open", "closed")
    closed = snap()
    assert closed.open_for_seconds is None
    assert closed.last_recovery_seconds is not None
    assert closed.last_recovery_seconds >= 0
    counters = CallCounters(lambda: [snap()])
    assert counters.recovery("crm") == closed.last_recovery_seconds
    policy = SloPolicy(systems={System.CRM: SystemObjectives(recovery_seconds=120)})
    [status] = system_slos(policy, counters, System.CRM, None)
    assert (status.objective, status.ok) == ("recovery_seconds", True)
