"""Prometheus metrics, read from the running parts on each scrape.

The actors keep plain counters (``actors._stats``); this module turns a snapshot of them
into metric families when ``/metrics`` is scraped, so the hot path never touches
prometheus-client. Each gateway gets its own registry (tests run several in one process).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["build_registry"]

_BREAKER_STATES = ("closed", "open", "half_open")


class _ActorCollector(Collector):
    def __init__(self, runtime: Callable[[], Runtime | None]) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[Metric]:
        runtime = self._runtime()
        if runtime is None:
            return
        snapshots = runtime.systems.snapshots()
        calls = CounterMetricFamily(
            "crosswalk_upstream_calls",
            "Upstream calls made by each system actor",
            labels=["system"],
        )
        failures = CounterMetricFamily(
            "crosswalk_upstream_failures",
            "Upstream calls that counted against the breaker",
            labels=["system"],
        )
        retries = CounterMetricFamily(
            "crosswalk_upstream_retries", "Retried upstream calls", labels=["system"]
        )
        coalesced = CounterMetricFamily(
            "crosswalk_coalesced_asks", "Reads served by another identical read", labels=["system"]
        )
        expired = CounterMetricFamily(
            "crosswalk_expired_messages",
            "Messages dropped because their deadline passed in the mailbox",
            labels=["system"],
        )
        shed = CounterMetricFamily(
            "crosswalk_shed_messages",
            "Messages refused THROTTLED because the mailbox was full",
            labels=["system", "priority"],
        )
        depth = GaugeMetricFamily(
            "crosswalk_mailbox_depth",
            "Messages waiting per priority",
            labels=["system", "priority"],
        )
        in_flight = GaugeMetricFamily(
            "crosswalk_in_flight", "Upstream calls in flight", labels=["system"]
        )
        breaker = GaugeMetricFamily(
            "crosswalk_breaker_state",
            "1 for the breaker's current state",
            labels=["system", "state"],
        )
        transitions = CounterMetricFamily(
            "crosswalk_breaker_transitions",
            "Breaker state changes",
            labels=["system", "transition"],
        )
        latency = HistogramMetricFamily(
            "crosswalk_upstream_latency_seconds",
            "Upstream call latency",
            labels=["system"],
        )
        for snap in snapshots:
            s = snap.system
            calls.add_metric([s], snap.calls)
            failures.add_metric([s], snap.failures)
            retries.add_metric([s], snap.retries)
            coalesced.add_metric([s], snap.coalesced)
            expired.add_metric([s], snap.expired)
            in_flight.add_metric([s], snap.in_flight)
            for priority, count in snap.shed.items():
                shed.add_metric([s, priority], count)
            for priority, count in snap.mailbox_depth.items():
                depth.add_metric([s, priority], count)
            for state in _BREAKER_STATES:
                breaker.add_metric([s, state], 1.0 if snap.breaker_state == state else 0.0)
            for transition, count in snap.breaker_transitions.items():
                transitions.add_metric([s, transition], count)
            buckets = [
                ("+Inf" if le == float("inf") else repr(le), count)
                for le, count in snap.latency_buckets
            ]
            latency.add_metric([s], buckets, snap.latency_sum)
        yield from (
            calls, failures, retries, coalesced, expired, shed, depth, in_flight, breaker,
            transitions, latency,
        )  # fmt: skip


def build_registry(runtime: Callable[[], Runtime | None]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ActorCollector(runtime))
    return registry
