"""Counters one system actor keeps, shaped for Prometheus but free of it.

The metrics module reads ``ActorStats.snapshot()`` (a frozen copy) on scrape; nothing here
blocks or allocates per call beyond a list index and an append.
"""

from __future__ import annotations

import bisect
import statistics
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from actors.messages import Priority

__all__ = ["LATENCY_BUCKETS", "ActorStats", "StatsSnapshot", "SystemState"]

#: upper bounds in seconds, Prometheus ``le`` style; +Inf is implied
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

# enough recent samples for a stable median without holding history forever
_RECENT = 1024


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """One actor's counters at one moment (cumulative since the actor started)."""

    system: str
    calls: int  # upstream attempts, retries included
    failures: int  # attempts whose outcome counts against the breaker
    retries: int
    coalesced: int  # asks that shared another identical read's upstream call
    expired: int  # dropped in the mailbox: their deadline passed before a worker got to them
    restarts: int  # workers restarted by supervision
    shed: Mapping[str, int]  # per priority name, answered THROTTLED because the mailbox was full
    mailbox_depth: Mapping[str, int]  # per priority name, now
    in_flight: int
    breaker_state: str  # "closed" | "open" | "half_open"
    breaker_transitions: Mapping[str, int]  # "closed->open": count
    latency_buckets: tuple[tuple[float, int], ...]  # cumulative (le, count), +Inf last
    latency_sum: float
    latency_count: int
    #: calls that waited for the system's rate limiter, and the seconds they waited
    throttle_waits: int = 0
    throttle_wait_seconds: float = 0.0
    #: how long the breaker has been open now (None while closed), and how long the last
    #: outage lasted from opening to closing again (None before the first one)
    open_for_seconds: float | None = None
    last_recovery_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class SystemState:
    """What ``Query.systems`` shows for one system."""

    system: str
    healthy: bool | None  # outcome of the last ping; None before the first one
    health_detail: str  # why it is unhealthy, or the ping's round trip
    breaker: str  # "closed" | "open" | "half_open"
    queue_depth: int
    p50_latency_ms: float | None  # median of recent upstream calls; None before any call
    p99_latency_ms: float | None = None  # 99th percentile of the same recent calls


class ActorStats:
    """Mutable counters, written only from the actor's own tasks (one event loop)."""

    def __init__(self, system: str) -> None:
        self.system = system
        self.calls = 0
        self.failures = 0
        self.retries = 0
        self.coalesced = 0
        self.expired = 0
        self.restarts = 0
        self.throttle_waits = 0
        self.throttle_wait_seconds = 0.0
        self._opened_at: float | None = None
        self.last_recovery: float | None = None
        self.shed: dict[Priority, int] = dict.fromkeys(Priority, 0)
        self.transitions: dict[str, int] = {}
        self._bucket_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0
        self._latency_count = 0
        self._recent: deque[float] = deque(maxlen=_RECENT)

    def observe(self, seconds: float) -> None:
        """Record one upstream call's latency."""
        self._bucket_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._latency_sum += seconds
        self._latency_count += 1
        self._recent.append(seconds)

    def transition(self, old: str, new: str) -> None:
        key = f"{old}->{new}"
        self.transitions[key] = self.transitions.get(key, 0) + 1
        # an outage runs from the breaker's first opening to its closing again (half-open
        # trials that fail and re-open it are the same outage)
        if new == "open" and self._opened_at is None:
            self._opened_at = time.monotonic()
        elif new == "closed" and self._opened_at is not None:
            self.last_recovery = time.monotonic() - self._opened_at
            self._opened_at = None

    def p50(self) -> float | None:
        return statistics.median(self._recent) if self._recent else None

    def p99(self) -> float | None:
        if not self._recent:
            return None
        ordered = sorted(self._recent)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]

    def snapshot(
        self,
        *,
        breaker_state: str,
        mailbox_depth: Mapping[Priority, int],
        in_flight: int,
    ) -> StatsSnapshot:
        cumulative: list[tuple[float, int]] = []
        running = 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), self._bucket_counts, strict=True):
            running += count
            cumulative.append((bound, running))
        return StatsSnapshot(
            system=self.system,
            calls=self.calls,
            failures=self.failures,
            retries=self.retries,
            coalesced=self.coalesced,
            expired=self.expired,
            restarts=self.restarts,
            shed=MappingProxyType({p.name.lower(): n for p, n in self.shed.items()}),
            mailbox_depth=MappingProxyType({p.name.lower(): n for p, n in mailbox_depth.items()}),
            in_flight=in_flight,
            breaker_state=breaker_state,
            breaker_transitions=MappingProxyType(dict(self.transitions)),
            latency_buckets=tuple(cumulative),
            latency_sum=self._latency_sum,
            latency_count=self._latency_count,
            throttle_waits=self.throttle_waits,
            throttle_wait_seconds=self.throttle_wait_seconds,
            open_for_seconds=None
            if self._opened_at is None
            else time.monotonic() - self._opened_at,
            last_recovery_seconds=self.last_recovery,
        )
