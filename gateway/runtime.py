"""The running gateway's parts, opened together and closed in reverse.

    async with open_runtime(settings) as runtime:
        runtime.store       # gateway.store.Store (SQLite or PostgreSQL)
        runtime.systems     # actors.Systems: the four system actors
        runtime.policies    # gateway.governance.policies.Policies
        runtime.audit       # gateway.observability.audit.AuditWriter: vendor calls
        runtime.bus         # gateway.bus.Bus: news of commits between replicas

Opening loads and validates ``policies/`` first (a bad file stops start-up with the file,
key and reason), then the bus (``--bus``: in-process by default; an unreachable NATS stops
start-up), then the store (migrations run), then the actors; background processes
(the outbox dispatcher) run in the runtime's task group and stop before the actors do.
The audit writer opens before the actors (their every vendor call is queued to it) and
closes after them, with a final flush; the audit retention purge runs supervised.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from anyio.abc import TaskStatus

from actors import ConnectorFactory, Systems
from actors.messages import Priority
from canonical import System
from gateway.bus import Bus, nats_target, open_bus
from gateway.cluster import QuotaShare, SoleReplica, sharing_quota
from gateway.governance.audit import AuditPolicy
from gateway.governance.policies import Policies, load_policies
from gateway.observability.audit import AuditWriter, purge_audit
from gateway.observability.correlation import working_for
from gateway.observability.slo import CallCounters
from gateway.processes.context import EVENTS_CLIENT, Caller
from gateway.processes.discovery import discover
from gateway.processes.dispatcher import Dispatcher
from gateway.processes.reactions import Reactions, Submit
from gateway.processes.reconcile import run_reconciliation
from gateway.processes.replication import Replication
from gateway.readmodel.feeds import Feeds, system_feeds
from gateway.readmodel.model import ReadModel
from gateway.readmodel.quota import Quota
from gateway.settings import Settings
from gateway.store import Store, open_store

__all__ = ["Runtime", "open_runtime"]

log = logging.getLogger(__name__)

#: the first wait before a discovery round that could not list a system is tried again
DISCOVERY_RETRY_FIRST = 5.0
#: the longest such wait when discovery has no interval of its own (start-up only)
DISCOVERY_RETRY_MAX = 600.0
#: how long background processes may take to finish what they hold at shutdown
SHUTDOWN_GRACE = 10.0
#: a crashed background task is restarted after this back-off, doubled per crash in a row
RESTART_FIRST_DELAY = 1.0
RESTART_MAX_DELAY = 60.0


@dataclass(slots=True)
class Runtime:
    settings: Settings
    policies: Policies
    store: Store
    systems: Systems
    started_at: float = field(default_factory=time.time)
    #: False while starting and once shutdown begins: /readyz answers 503
    ready: bool = False
    #: the read model (None in runtimes assembled without one: reads ask the actors)
    read_model: ReadModel | None = None
    #: each system's rate split by purpose
    quota: Quota | None = None
    #: the event consumer and catch-up loops feeding the read model
    feeds: Feeds | None = None
    #: writes every vendor call to the audit trail (None in runtimes assembled without one)
    audit: AuditWriter | None = None
    #: samples of the actors' call counters, for the SLO burn rates (gateway.observability.slo)
    slo: CallCounters | None = None
    #: news of commits between replicas (None in runtimes assembled without one)
    bus: Bus | None = None
    #: this replica's share of every vendor quota (``gateway.cluster``)
    replicas: QuotaShare = field(default_factory=SoleReplica)
    #: what this replica tells the others and takes from them (None: it runs alone)
    replication: Replication | None = None


async def _retention(store: Store, policy: AuditPolicy, scope: anyio.CancelScope) -> None:
    with scope:
        await supervise("audit retention", functools.partial(_retention_loop, store, policy))


async def _retention_loop(store: Store, policy: AuditPolicy) -> None:
    """Delete audit entries past ``retention_days``: at start, then every interval."""
    while True:
        purged = await purge_audit(
            store, before=store.clock() - policy.retention, batch=policy.batch
        )
        if purged:
            log.info("purged %d audit entries older than %d days", purged, policy.retention_days)
        await anyio.sleep(policy.purge_interval)


async def _sampling(counters: CallCounters, scope: anyio.CancelScope) -> None:
    with scope:
        await supervise("slo sampling", counters.run)


async def _discovery(runtime: Runtime, scope: anyio.CancelScope) -> None:
    # shutdown cancels the supervisor and the loop it restarts together, through ``scope``
    with scope:
        await supervise("discovery", functools.partial(_discovery_loop, runtime))


class _StartedOnce(TaskStatus[None]):
    """Passes the first ``started()`` on; a restarted task's later ones are no news."""

    def __init__(self, status: TaskStatus[None]) -> None:
        self._status = status
        self._done = False

    def started(self, value: None = None) -> None:
        if not self._done:
            self._done = True
            self._status.started()


async def _dispatching(
    dispatcher: Dispatcher, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    """The dispatcher, restarted if it crashes; ready once its first run is up."""
    status = _StartedOnce(task_status)
    await supervise("outbox dispatcher", lambda: dispatcher.run(task_status=status))


def _submitter(runtime: Runtime) -> Submit:
    """The write path's ``submit`` for flows the systems' own events start."""

    async def submit(
        kind: str, input: Mapping[str, Any], idempotency_key: str, correlation_id: str
    ) -> Any:
        from gateway.processes.write_path import write_path_for

        return await write_path_for(runtime).submit(
            kind,
            input,
            caller=Caller(EVENTS_CLIENT, system=None),
            idempotency_key=idempotency_key,
            correlation_id=correlation_id,
        )

    return submit


async def _read_model_tasks(
    model: ReadModel, feeds: Feeds, run_feeds: bool, scope: anyio.CancelScope
) -> None:
    with scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(supervise, "read-through writer", model.write_read_throughs)
            if run_feeds:
                tg.start_soon(supervise, "read-model feeds", feeds.run)


async def _replicating(replication: Replication, since: float, scope: anyio.CancelScope) -> None:
    with scope:
        await supervise("replication", functools.partial(replication.run, since))


async def _scheduled(runtime: Runtime, scope: anyio.CancelScope) -> None:
    """Reconciliation and retention on their schedules (``policies/schedules.toml``)."""
    with scope:
        async with anyio.create_task_group() as tg:
            if runtime.policies.schedules.reconcile.interval > 0:
                tg.start_soon(supervise, "reconciliation", functools.partial(_reconciling, runtime))
            if runtime.policies.schedules.retention.interval > 0:
                tg.start_soon(supervise, "retention", functools.partial(_purging, runtime))


async def _reconciling(runtime: Runtime) -> None:
    schedule = runtime.policies.schedules.reconcile
    assert runtime.read_model is not None
    assert runtime.quota is not None
    feeds = Feeds(
        runtime.read_model,
        runtime.systems,
        runtime.quota,
        runtime.policies.readmodel,
        store_events=False,
        purpose="reconcile",
        priority=Priority.BATCH,
    )
    while True:
        await anyio.sleep(schedule.interval)
        report = await run_reconciliation(
            runtime.read_model,
            feeds,
            runtime.policies.ownership,
            repair_drift=schedule.repair,
            correlation_id=f"reconcile-{int(time.time())}",
            trigger="schedule",
        )
        log.info(
            "reconciliation: %d customers, %d findings, %d repairs written",
            report.customers,
            len(report.findings),
            len(report.repaired),
        )


async def _purging(runtime: Runtime) -> None:
    """Purge what is past its keeping window, a batch per transaction, so a writer waits
    at most one batch."""
    schedule = runtime.policies.schedules.retention
    store = runtime.store
    while True:
        now = datetime.now(UTC)
        purged = 0
        for purge in (
            functools.partial(store.purge_inbox, before=now - timedelta(days=schedule.inbox_days)),
            functools.partial(
                store.purge_outbox, before=now - timedelta(days=schedule.outbox_days)
            ),
            functools.partial(store.purge_expired, now=now),
        ):
            while True:
                count = await purge(limit=schedule.batch)
                purged += count
                if count < schedule.batch:
                    break
                await anyio.lowlevel.checkpoint()  # let waiting writers in between batches
        if purged:
            log.info("retention: %d old records purged", purged)
        await anyio.sleep(schedule.interval)


async def _discovery_loop(runtime: Runtime) -> None:
    """Keep the cross-reference registry filled: at start, then every interval.

    Runs at BATCH priority, so a portal's reads always go first. A round in which a system
    could not be listed (down, or not up yet: `crosswalk up` seeding thousands of demo
    customers) is tried again soon, after 5 s doubling up to the interval, rather than a
    whole interval later. Shutdown cancels it at once (a partial round loses nothing:
    every link it made is its own transaction).
    """
    interval = runtime.settings.discovery_interval
    retry = DISCOVERY_RETRY_FIRST
    while True:
        with working_for("discovery"):
            report = await discover(
                runtime.store,
                runtime.systems,
                max_pages={
                    system: policy.bounds.max_pages
                    for system, policy in runtime.policies.systems.systems.items()
                },
            )
        for system, reason in report.failed.items():
            log.warning("discovery could not list %s customers: %s", system, reason)
        if report.failed and (interval <= 0 or retry < interval):
            await anyio.sleep(retry)
            retry = min(retry * 2, interval if interval > 0 else DISCOVERY_RETRY_MAX)
            continue
        if interval <= 0:
            return
        retry = DISCOVERY_RETRY_FIRST
        await anyio.sleep(interval)


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    first_delay: float = RESTART_FIRST_DELAY,
    max_delay: float = RESTART_MAX_DELAY,
) -> None:
    """Run a background task until it returns; restart it whenever it crashes.

    A crash is logged with its traceback and the task started again after a back-off
    that doubles per crash in a row, up to ``max_delay``; a run that lasted longer than
    ``max_delay`` resets it. Without this, one failed step (a discovery that raised at
    start) ended the runtime's task group while the process kept serving: /healthz 200,
    /readyz 503, for ever. Cancellation is not a crash and passes through.
    """
    delay = first_delay
    while True:
        began = anyio.current_time()
        try:
            await run()
            return
        except Exception:  # the supervision boundary: any crash restarts the task
            log.exception("%s crashed; restarting in %.1f s", name, delay)
        if anyio.current_time() - began > max_delay:
            delay = first_delay
        await anyio.sleep(delay)
        delay = min(delay * 2, max_delay)


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    connectors: Mapping[System, ConnectorFactory] | None = None,
    policies: Policies | None = None,
) -> AsyncIterator[Runtime]:
    policies = policies or load_policies(settings.policies_dir, profile=settings.profile)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    quota = Quota(
        {system: p.rate.per_second for system, p in policies.systems.systems.items()},
        policies.readmodel.quota,
    )

    def share(fraction: float) -> None:  # called once `systems` below is entered
        systems.set_rate_share(fraction)
        quota.set_replica_share(fraction)

    async with (
        open_bus(settings.bus_url) as bus,
        open_store(settings.resolved_store_url) as store,
        AuditWriter(store, capacity=policies.audit.queue) as audit,
        Systems(policies.systems, connectors, on_call=audit.record) as systems,
        # replicas on one bus split every vendor quota between them; outside the task
        # group, so this replica keeps its share until its deliveries have drained
        sharing_quota(None if bus.alone else nats_target(settings.bus_url), share) as replicas,
        anyio.create_task_group() as tg,
    ):
        read_model = ReadModel(store, system_feeds())
        replication: Replication | None = None
        if not bus.alone:
            replication = Replication(bus, store, read_model)
            replication.attach()  # from before the load: what it misses is in the store
        loaded_from = time.time()
        await read_model.load()
        feeds = Feeds(read_model, systems, quota, policies.readmodel)
        counters = CallCounters(systems.snapshots)
        runtime = Runtime(
            settings=settings,
            policies=policies,
            store=store,
            systems=systems,
            read_model=read_model,
            quota=quota,
            feeds=feeds,
            audit=audit,
            slo=counters,
            bus=bus,
            replication=replication,
            replicas=replicas,
        )
        reactions = Reactions(store, read_model, policies.ownership, submit=_submitter(runtime))
        feeds.on_events = reactions.within
        feeds.on_applied = reactions.after
        # the read model's writers: nothing to drain at shutdown (a read-through not yet
        # written is read through again; a feed page not committed is read again)
        background = anyio.CancelScope()
        tg.start_soon(_read_model_tasks, read_model, feeds, settings.feeds, background)
        replicating = anyio.CancelScope()
        if replication is not None:
            # the other replicas' news from before the load on (the version rule drops
            # what the load already held)
            tg.start_soon(_replicating, replication, loaded_from, replicating)
        scheduled = anyio.CancelScope()
        if settings.feeds:
            tg.start_soon(_scheduled, runtime, scheduled)
        dispatcher: Dispatcher | None = None
        if settings.dispatcher:
            dispatcher = Dispatcher(store, systems, policy=policies.outbox.dispatcher)
            await tg.start(_dispatching, dispatcher)
        discovery = anyio.CancelScope()
        tg.start_soon(_discovery, runtime, discovery, name="discovery")
        retention = anyio.CancelScope()
        tg.start_soon(_retention, store, policies.audit, retention, name="audit retention")
        sampling = anyio.CancelScope()
        tg.start_soon(_sampling, counters, sampling, name="slo sampling")
        runtime.ready = True
        try:
            yield runtime
        finally:
            runtime.ready = False
            discovery.cancel()  # nothing to drain; it would hold shutdown till its next round
            sampling.cancel()
            retention.cancel()  # a purge cut short is finished by the next start's
            background.cancel()
            replicating.cancel()  # the store is the truth: nothing of it to finish
            scheduled.cancel()
            if dispatcher is not None:
                # stop leasing; deliveries in flight finish within the dispatcher's own
                # deadline, and whatever is left is recovered by lease expiry on restart
                dispatcher.stop()
                tg.cancel_scope.deadline = anyio.current_time() + SHUTDOWN_GRACE
            else:
                tg.cancel_scope.cancel()
