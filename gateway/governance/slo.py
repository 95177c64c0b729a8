"""Service level objectives from ``policies/slo.toml``: per system, per flow, for the data.

The file is optional; without it there are no objectives and ``GET /slo`` answers an
empty list. Every key is checked and unknown keys are refused
(``PolicyError(file, key, reason)``)::

    [systems.erp]
    availability = 0.995      # share of upstream calls that succeed
    sync_lag_seconds = 60     # the read model's copy is at most this old
    recovery_seconds = 120    # an outage (breaker open) ends within this long

    [flows.onboardCustomer]   # an operation kind
    success_rate = 0.99       # SUCCEEDED among finished operations over the window

    [data_consistency]
    max_findings = 0          # drift findings of the latest reconciliation run

    [windows]
    success_rate_minutes = 60 # the window a flow's success rate is measured over
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from canonical import System
from gateway.governance._toml import PolicyTable, read_policy

__all__ = ["FlowObjectives", "SloPolicy", "SystemObjectives", "load_slo_policy"]


@dataclass(frozen=True, slots=True)
class SystemObjectives:
    availability: float | None = None
    sync_lag_seconds: float | None = None
    recovery_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class FlowObjectives:
    success_rate: float


@dataclass(frozen=True, slots=True)
class SloPolicy:
    systems: dict[System, SystemObjectives] = field(default_factory=dict)
    flows: dict[str, FlowObjectives] = field(default_factory=dict)
    #: None: no data consistency objective
    max_findings: int | None = None
    success_rate_window: float = 3600.0


def _ratio(table: PolicyTable, name: str) -> float:
    value = table.number(name)
    if not value < 1:
        raise table.fail(name, f"must be a share below 1 (like 0.995), got {value}")
    return value


def load_slo_policy(path: Path | str) -> SloPolicy:
    """Read ``path`` (a missing file means no objectives); raise PolicyError on a bad value."""
    data = read_policy(path, if_missing=None)
    data.only({"systems", "flows", "data_consistency", "windows"})
    systems_table = data.table("systems", required=False)
    systems_table.only({str(s.value) for s in System})
    systems: dict[System, SystemObjectives] = {}
    for name in systems_table:
        table = systems_table.table(name)
        table.only({"availability", "sync_lag_seconds", "recovery_seconds"})
        systems[System(name)] = SystemObjectives(
            availability=_ratio(table, "availability") if "availability" in table else None,
            sync_lag_seconds=(
                table.number("sync_lag_seconds") if "sync_lag_seconds" in table else None
            ),
            recovery_seconds=(
                table.number("recovery_seconds") if "recovery_seconds" in table else None
            ),
        )
    flows_table = data.table("flows", required=False)
    flows: dict[str, FlowObjectives] = {}
    for kind in flows_table:
        table = flows_table.table(kind)
        table.only({"success_rate"})
        flows[kind] = FlowObjectives(success_rate=_ratio(table, "success_rate"))
    consistency = data.table("data_consistency", required=False)
    consistency.only({"max_findings"})
    max_findings = (
        consistency.integer("max_findings", minimum=0) if "max_findings" in consistency else None
    )
    windows = data.table("windows", required=False)
    windows.only({"success_rate_minutes"})
    minutes = windows.number("success_rate_minutes", default=60.0)
    return SloPolicy(
        systems=systems,
        flows=flows,
        max_findings=max_findings,
        success_rate_window=minutes * 60,
    )
