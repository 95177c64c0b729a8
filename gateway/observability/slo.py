"""Service level indicators against the objectives of ``policies/slo.toml``.

Burn rate as the SRE workbook defines it: the error rate over a window divided by the
error budget (``1 - objective``); 1.0 spends the budget exactly as fast as the objective
allows, 14.4 over 1 h spends 2 % of a 30-day budget. Two windows are reported, 5 min
and 1 h, so a reader can tell a fresh spike from a lasting burn.

The actors' call counters are cumulative, so ``CallCounters`` keeps a sample of them
every few seconds (``run``, owned by the runtime's task group) and a window's rate is the
difference between now and the sample at the window's start. Flow success rates come from
the store's operations, the consistency objective from the latest reconciliation run.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from actors import StatsSnapshot
from canonical import System
from gateway.governance.slo import SloPolicy
from gateway.store.records import OperationStatus

__all__ = ["WINDOWS", "CallCounters", "SloStatus", "evaluate", "system_slos"]

#: the burn rate windows reported, by label
WINDOWS: dict[str, float] = {"5m": 300.0, "1h": 3600.0}
#: how many finished operations one evaluation reads at most (newest first)
_OPERATIONS_READ = 5000
_FINISHED = {
    OperationStatus.SUCCEEDED,
    OperationStatus.FAILED,
    OperationStatus.NEEDS_ATTENTION,
}


@dataclass(frozen=True, slots=True)
class SloStatus:
    """One objective now: ``value`` is None when nothing was measured yet."""

    scope: str  # "system" | "flow" | "data"
    name: str  # the system, the operation kind, or "consistency"
    objective: str  # "availability" | "sync_lag_seconds" | "success_rate" | "max_findings"
    target: float
    value: float | None
    #: window label -> burn rate; None where the objective has no error budget (thresholds)
    #: or the window saw no traffic
    burn_rates: dict[str, float | None]
    ok: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "name": self.name,
            "objective": self.objective,
            "target": self.target,
            "value": self.value,
            "burn_rates": self.burn_rates,
            "ok": self.ok,
        }


class CallCounters:
    """Samples of the actors' cumulative (calls, failures), for rates over a window."""

    def __init__(
        self,
        snapshots: Callable[[], Sequence[StatsSnapshot]],
        *,
        every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every = every
        self._snapshots = snapshots
        self._clock = clock
        keep = int(max(WINDOWS.values()) / every) + 2
        self._samples: deque[tuple[float, dict[str, tuple[int, int]]]] = deque(maxlen=keep)

    def _now(self) -> dict[str, tuple[int, int]]:
        return {s.system: (s.calls, s.failures) for s in self._snapshots()}

    def recovery(self, system: str) -> float | None:
        """The current outage's length if the breaker is open, else the last one's."""
        for snap in self._snapshots():
            if snap.system == system:
                if snap.open_for_seconds is not None:
                    return snap.open_for_seconds
                return snap.last_recovery_seconds
        return None

    def sample(self) -> None:
        self._samples.append((self._clock(), self._now()))

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            self.sample()
            await anyio.sleep(self.every)

    def window(self, system: str, seconds: float) -> tuple[int, int]:
        """(calls, failures) of ``system`` over the last ``seconds`` (or since the first
        sample, when the counters are younger than that)."""
        now = self._now().get(system, (0, 0))
        start = self._clock() - seconds
        # the last sample at or before the window's start; the oldest if all are younger
        base = self._samples[0][1] if self._samples else {}
        for at, counts in self._samples:
            if at > start:
                break
            base = counts
        then = base.get(system, (0, 0))
        return now[0] - then[0], now[1] - then[1]


def _burn(errors: int, total: int, objective: float) -> float | None:
    if total <= 0:
        return None
    return round((errors / total) / (1 - objective), 3)


def system_slos(
    policy: SloPolicy,
    counters: CallCounters | None,
    system: System,
    lag_seconds: float | None,
) -> list[SloStatus]:
    """``system``'s objectives now (no store read: ``Query.systems`` calls this)."""
    objectives = policy.systems.get(system)
    if objectives is None:
        return []
    statuses: list[SloStatus] = []
    if objectives.availability is not None:
        target = objectives.availability
        rates: dict[str, float | None] = {}
        value: float | None = None
        for label, seconds in WINDOWS.items():
            calls, failures = counters.window(system, seconds) if counters else (0, 0)
            rates[label] = _burn(failures, calls, target)
            if label == "1h" and calls > 0:
                value = round((calls - failures) / calls, 5)
        statuses.append(
            SloStatus(
                "system",
                system,
                "availability",
                target,
                value,
                rates,
                value is None or value >= target,
            )  # fmt: skip
        )
    if objectives.recovery_seconds is not None:
        target = objectives.recovery_seconds
        took = counters.recovery(system) if counters else None
        took = None if took is None else round(took, 3)
        statuses.append(
            SloStatus(
                "system",
                system,
                "recovery_seconds",
                target,
                took,
                dict.fromkeys(WINDOWS),
                took is None or took <= target,
            )  # fmt: skip
        )
    if objectives.sync_lag_seconds is not None:
        target = objectives.sync_lag_seconds
        lag = None if lag_seconds is None else round(lag_seconds, 3)
        statuses.append(
            SloStatus(
                "system",
                system,
                "sync_lag_seconds",
                target,
                lag,
                dict.fromkeys(WINDOWS),
                lag is not None and lag <= target,
            )  # fmt: skip
        )
    return statuses


async def _flow_counts(store: Any, seconds: float) -> dict[str, dict[str, tuple[int, int]]]:
    """kind -> window label (and "objective") -> (finished, failed), read newest first."""
    windows = {**WINDOWS, "objective": seconds}
    oldest = datetime.now(UTC) - timedelta(seconds=max(windows.values()))
    counts: dict[str, dict[str, list[int]]] = {}
    now = datetime.now(UTC)
    after: str | None = None
    read = 0
    while read < _OPERATIONS_READ:
        page = await store.list_operations(limit=500, after=after)
        for operation in page.items:
            read += 1
            if operation.created_at < oldest:
                after = None
                break
            if operation.status not in _FINISHED:
                continue
            age = (now - operation.created_at).total_seconds()
            failed = operation.status is not OperationStatus.SUCCEEDED
            per_window = counts.setdefault(operation.kind, {})
            for label, limit in windows.items():
                if age <= limit:
                    tally = per_window.setdefault(label, [0, 0])
                    tally[0] += 1
                    tally[1] += failed
        else:
            after = page.next_cursor
        if after is None:
            break
    return {
        kind: {label: (t[0], t[1]) for label, t in windows_.items()}
        for kind, windows_ in counts.items()
    }


async def evaluate(
    policy: SloPolicy,
    store: Any,
    counters: CallCounters | None,
    lags: dict[System, float | None],
) -> list[SloStatus]:
    """Every objective of ``policy`` now, systems first, then flows, then the data."""
    statuses = [
        status
        for system in System
        for status in system_slos(policy, counters, system, lags.get(system))
    ]
    if policy.flows:
        counts = await _flow_counts(store, policy.success_rate_window)
        for kind, flow in policy.flows.items():
            per_window = counts.get(kind, {})
            finished, failed = per_window.get("objective", (0, 0))
            value = None if finished == 0 else round((finished - failed) / finished, 5)
            rates: dict[str, float | None] = {
                label: _burn(
                    per_window.get(label, (0, 0))[1],
                    per_window.get(label, (0, 0))[0],
                    flow.success_rate,
                )  # fmt: skip
                for label in WINDOWS
            }
            statuses.append(
                SloStatus(
                    "flow",
                    kind,
                    "success_rate",
                    flow.success_rate,
                    value,
                    rates,
                    value is None or value >= flow.success_rate,
                )  # fmt: skip
            )
    if policy.max_findings is not None:
        runs = await store.reconciliation_runs(limit=1)
        findings = float(runs[0].findings) if runs else None
        statuses.append(
            SloStatus(
                "data",
                "consistency",
                "max_findings",
                float(policy.max_findings),
                findings,
                dict.fromkeys(WINDOWS),
                findings is None or findings <= policy.max_findings,
            )  # fmt: skip
        )
    return statuses
