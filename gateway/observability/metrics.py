"""Prometheus metrics, read from the running parts on each scrape.

The actors keep plain counters (``actors._stats``); this module turns a snapshot of them
into metric families when ``/metrics`` is scraped, so the hot path never touches
prometheus-client. Each gateway gets its own registry (tests run several in one process).
The collectors read the running gateway through ``gateway.observability.sources.Observed``.

``GatewayMetrics`` holds what the edge counts as it goes: GraphQL requests by operation
name (the first ``MAX_OPERATION_NAMES`` names seen, then ``other``: names come from
clients, so they are bounded), type and outcome, with latency; webhooks by system and
result. The outbox families (backlog by system and status, the oldest open message's
age, dead letters) come from the store, read once per scrape (``refresh``). No label
ever holds an id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from canonical import System
from gateway.observability.slo import SloStatus, evaluate
from gateway.observability.sources import Observed, ReplicationFigures
from gateway.store import MessageStatus, OutboxStatus, StoreError

__all__ = ["MAX_OPERATION_NAMES", "GatewayMetrics", "build_registry"]

log = logging.getLogger(__name__)

#: distinct GraphQL operation names kept as label values; later ones count as "other"
MAX_OPERATION_NAMES = 100
_SYSTEMS = ("erp", "billing", "crm", "support")

_BREAKER_STATES = ("closed", "open", "half_open")
#: seconds an SLO evaluation is reused by later scrapes
SLO_REFRESH = 10.0


class _ActorCollector(Collector):
    def __init__(self, runtime: Callable[[], Observed | None]) -> None:
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
        throttle_waits = CounterMetricFamily(
            "crosswalk_throttle_waits",
            "Upstream calls that waited for the system's rate limiter",
            labels=["system"],
        )
        throttle_seconds = CounterMetricFamily(
            "crosswalk_throttle_wait_seconds",
            "Seconds upstream calls waited for the system's rate limiter",
            labels=["system"],
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
            throttle_waits.add_metric([s], snap.throttle_waits)
            throttle_seconds.add_metric([s], snap.throttle_wait_seconds)
        yield from (
            calls, failures, retries, coalesced, expired, shed, depth, in_flight, breaker,
            transitions, latency, throttle_waits, throttle_seconds,
        )  # fmt: skip


class GatewayMetrics:
    """The edge's own counters, registered on one gateway's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.graphql_requests = Counter(
            "crosswalk_graphql_requests",
            "GraphQL operations by name, type and outcome (ok, error, rejected)",
            ["operation", "type", "outcome"],
            registry=registry,
        )
        self.graphql_latency = Histogram(
            "crosswalk_graphql_request_seconds",
            "Seconds to answer a GraphQL operation",
            ["type", "outcome"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        self.webhooks = Counter(
            "crosswalk_webhooks",
            "Webhook deliveries received, by system and result",
            ["system", "result"],
            registry=registry,
        )
        self._names: set[str] = set()
        self.outbox: OutboxStatus | None = None
        self.outbox_read_at = 0.0
        #: the latest reconciliation run's id and its findings per kind
        self.reconciliation: tuple[int, dict[str, int]] | None = None
        #: every objective of policies/slo.toml at the last evaluation, and when
        self.slos: list[SloStatus] = []
        self._slos_at = float("-inf")

    def operation_label(self, name: str | None) -> str:
        if not name:
            return "anonymous"
        if name in self._names:
            return name
        if len(self._names) < MAX_OPERATION_NAMES and len(name) <= 64:
            self._names.add(name)
            return name
        return "other"

    def graphql(self, name: str | None, kind: str, outcome: str, seconds: float) -> None:
        self.graphql_requests.labels(self.operation_label(name), kind, outcome).inc()
        self.graphql_latency.labels(kind, outcome).observe(seconds)

    def webhook(self, system: str, status: int) -> None:
        result = "accepted" if status < 300 else "rejected" if status < 500 else "failed"
        self.webhooks.labels(system if system in _SYSTEMS else "unknown", result).inc()

    async def refresh(self, runtime: Observed | None) -> None:
        """Read the outbox's figures for this scrape (one store read)."""
        if runtime is None:
            return
        try:
            self.outbox = await runtime.store.outbox_status()
            runs = await runtime.store.reconciliation_runs(limit=1)
            if runs and (self.reconciliation is None or self.reconciliation[0] != runs[0].id):
                page = await runtime.store.reconciliation_findings(runs[0].id, limit=100_000)
                kinds: dict[str, int] = {}
                for finding in page.items:
                    kinds[finding.kind] = kinds.get(finding.kind, 0) + 1
                self.reconciliation = (runs[0].id, kinds)
        except StoreError as exc:  # a busy store must not fail the scrape: keep the last
            log.warning("metrics: outbox figures not refreshed: %s", exc)
            return
        self.outbox_read_at = time.time()
        policy = getattr(getattr(runtime, "policies", None), "slo", None)
        # the flows' success rates read up to 5,000 operations: not more often than every
        # SLO_REFRESH seconds, however often Prometheus scrapes
        if policy is not None and time.monotonic() - self._slos_at >= SLO_REFRESH:
            self._slos_at = time.monotonic()
            model = getattr(runtime, "read_model", None)
            lags = {s: None if model is None else model.lag(s) for s in System}
            try:
                self.slos = await evaluate(
                    policy, runtime.store, getattr(runtime, "slo", None), lags
                )
            except StoreError as exc:
                log.warning("metrics: SLO figures not refreshed: %s", exc)


class _OutboxCollector(Collector):
    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        status = self._metrics.outbox
        if status is None:
            return
        backlog = GaugeMetricFamily(
            "crosswalk_outbox_messages",
            "Outbox messages by system and status (pending and leased are the backlog)",
            labels=["system", "status"],
        )
        dead = GaugeMetricFamily(
            "crosswalk_outbox_dead_letters",
            "Dead letters waiting for an operator, by system",
            labels=["system"],
        )
        for system, by_status in status.counts.items():
            for state, count in by_status.items():
                backlog.add_metric([system, state.value], count)
            dead.add_metric([system], by_status.get(MessageStatus.DEAD, 0))
        oldest = GaugeMetricFamily(
            "crosswalk_outbox_oldest_open_age_seconds",
            "Age of the oldest message still waiting for delivery (0 when none)",
        )
        age = 0.0
        if status.oldest_open is not None:
            age = max(0.0, self._metrics.outbox_read_at - status.oldest_open.timestamp())
        oldest.add_metric([], age)
        yield from (backlog, dead, oldest)
        findings = GaugeMetricFamily(
            "crosswalk_reconciliation_findings",
            "Drift the latest reconciliation run found, by kind",
            labels=["kind"],
        )
        if self._metrics.reconciliation is not None:
            for kind, count in sorted(self._metrics.reconciliation[1].items()):
                findings.add_metric([kind], count)
        yield findings
        ok = GaugeMetricFamily(
            "crosswalk_slo_ok",
            "1 when the objective holds now (policies/slo.toml)",
            labels=["scope", "name", "objective"],
        )
        burn = GaugeMetricFamily(
            "crosswalk_slo_burn_rate",
            "Error-budget burn rate over the window (1 spends the budget exactly)",
            labels=["scope", "name", "objective", "window"],
        )
        for objective in self._metrics.slos:
            labels = [objective.scope, objective.name, objective.objective]
            ok.add_metric(labels, 1.0 if objective.ok else 0.0)
            for window, rate in objective.burn_rates.items():
                if rate is not None:
                    burn.add_metric([*labels, window], rate)
        yield ok
        yield burn


class _ReadModelCollector(Collector):
    """The read model's lag, size and event flow, and each system's quota split in use."""

    def __init__(self, runtime: Callable[[], Observed | None]) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[Metric]:
        runtime = self._runtime()
        model = getattr(runtime, "read_model", None)
        quota = getattr(runtime, "quota", None)
        if runtime is None or model is None:
            return
        lag = GaugeMetricFamily(
            "crosswalk_read_model_lag_seconds",
            "Seconds since every change feed of the system was last known complete "
            "(absent before the initial load finished)",
            labels=["system"],
        )
        records = GaugeMetricFamily(
            "crosswalk_read_model_records", "Records the read model holds", labels=["system"]
        )
        events = CounterMetricFamily(
            "crosswalk_read_model_events_applied",
            "Webhook events applied to the read model since start",
            labels=["system"],
        )
        feed_errors = GaugeMetricFamily(
            "crosswalk_read_model_feed_failing",
            "1 when the feed's last catch-up pass stopped short",
            labels=["system", "feed"],
        )
        for system in System:
            behind = model.lag(system)
            if behind is not None:
                lag.add_metric([str(system)], behind)
            records.add_metric([str(system)], model.count(system))
            events.add_metric([str(system)], model.events_applied.get(system, 0))
        for (system, feed), state in model.feeds.items():
            feed_errors.add_metric([str(system), feed], 1.0 if state.last_error else 0.0)
        yield from (lag, records, events, feed_errors)
        if quota is None:
            return
        spent = CounterMetricFamily(
            "crosswalk_quota_calls",
            "Calls taken from each system's quota share, by purpose",
            labels=["system", "purpose"],
        )
        refused = CounterMetricFamily(
            "crosswalk_quota_refusals",
            "Calls a share had no token for (reads answered from the read model instead)",
            labels=["system", "purpose"],
        )
        for (system, purpose), count in quota.spent.items():
            spent.add_metric([str(system), purpose], count)
        for (system, purpose), count in quota.refused.items():
            refused.add_metric([str(system), purpose], count)
        yield from (spent, refused)


class _AuditCollector(Collector):
    """The vendor calls' audit writer: entries written, dropped and lost."""

    def __init__(self, runtime: Callable[[], Observed | None]) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[Metric]:
        audit = getattr(self._runtime(), "audit", None)
        if audit is None:
            return
        written = CounterMetricFamily(
            "crosswalk_audit_written", "Vendor-call audit entries written to the store"
        )
        written.add_metric([], audit.written)
        dropped = CounterMetricFamily(
            "crosswalk_audit_dropped",
            "Vendor calls not audited because the writer's queue was full (oldest first)",
        )
        dropped.add_metric([], audit.dropped)
        failed = CounterMetricFamily(
            "crosswalk_audit_failed", "Vendor-call audit entries lost to a failed store write"
        )
        failed.add_metric([], audit.failed)
        queued = GaugeMetricFamily(
            "crosswalk_audit_queued", "Vendor calls waiting for the audit writer"
        )
        queued.add_metric([], audit.queued)
        yield from (written, dropped, failed, queued)


class _BusCollector(Collector):
    """News between replicas (only where the runtime shares a bus with others)."""

    def __init__(self, runtime: Callable[[], Observed | None]) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[Metric]:
        replication: ReplicationFigures | None = getattr(self._runtime(), "replication", None)
        if replication is None:
            return
        bus = replication.bus
        connected = GaugeMetricFamily(
            "crosswalk_bus_connected", "1 while the bus reaches the other replicas"
        )
        connected.add_metric([], 1.0 if bus.connected else 0.0)
        queued = GaugeMetricFamily("crosswalk_bus_queued", "Messages waiting to be sent")
        queued.add_metric([], bus.queued)
        yield from (connected, queued)
        for name, value, text in (
            ("published", bus.published, "Messages sent to the other replicas"),
            ("received", bus.received, "Messages received from the other replicas"),
            ("dropped", bus.dropped, "Messages not sent: the send queue was full"),
            ("overflowed", bus.overflowed, "Messages lost by a subscriber that fell behind"),
            ("gaps", replication.gaps, "Store re-reads after news was lost"),
        ):
            family = CounterMetricFamily(f"crosswalk_bus_{name}", text)
            family.add_metric([], value)
            yield family


def build_registry(
    runtime: Callable[[], Observed | None],
) -> tuple[CollectorRegistry, GatewayMetrics]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ActorCollector(runtime))
    registry.register(_ReadModelCollector(runtime))
    registry.register(_AuditCollector(runtime))
    registry.register(_BusCollector(runtime))
    metrics = GatewayMetrics(registry)
    registry.register(_OutboxCollector(metrics))
    return registry, metrics
