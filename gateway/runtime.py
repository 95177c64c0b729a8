"""The running gateway's parts, opened together and closed in reverse.

    async with open_runtime(settings) as runtime:
        runtime.store       # gateway.store.Store (SQLite or PostgreSQL)
        runtime.systems     # actors.Systems: the four system actors
        runtime.policies    # gateway.governance.policies.Policies

Opening loads and validates ``policies/`` first (a bad file stops start-up with the file,
key and reason), then the store (migrations run), then the actors; background processes
(the outbox dispatcher) run in the runtime's task group and stop before the actors do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from actors import Systems
from actors.systems import ConnectorFactory
from gateway.canonical import System
from gateway.governance.policies import Policies, load_policies
from gateway.processes.discovery import discover
from gateway.processes.dispatcher import Dispatcher
from gateway.settings import Settings
from gateway.store import Store, open_store

__all__ = ["Runtime", "open_runtime"]

log = logging.getLogger(__name__)

#: how long background processes may take to finish what they hold at shutdown
SHUTDOWN_GRACE = 10.0


@dataclass(slots=True)
class Runtime:
    settings: Settings
    policies: Policies
    store: Store
    systems: Systems
    started_at: float = field(default_factory=time.time)
    #: False while starting and once shutdown begins: /readyz answers 503
    ready: bool = False


async def _discovery_loop(runtime: Runtime, scope: anyio.CancelScope) -> None:
    """Keep the cross-reference registry filled: at start, then every interval.

    Runs at BATCH priority, so a portal's reads always go first; a system that is down is
    simply tried again next round. Shutdown cancels it through ``scope`` at once (a
    partial round loses nothing: every link it made is its own transaction).
    """
    interval = runtime.settings.discovery_interval
    with scope:
        while True:
            report = await discover(runtime.store, runtime.systems)
            for system, reason in report.failed.items():
                log.warning("discovery could not list %s customers: %s", system, reason)
            if interval <= 0:
                return
            await anyio.sleep(interval)


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    connectors: Mapping[System, ConnectorFactory] | None = None,
    policies: Policies | None = None,
) -> AsyncIterator[Runtime]:
    policies = policies or load_policies(settings.policies_dir, profile=settings.profile)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    async with (
        open_store(settings.resolved_store_url) as store,
        Systems(policies.systems, connectors) as systems,
        anyio.create_task_group() as tg,
    ):
        runtime = Runtime(settings=settings, policies=policies, store=store, systems=systems)
        dispatcher: Dispatcher | None = None
        if settings.dispatcher:
            dispatcher = Dispatcher(store, systems, policy=policies.outbox.dispatcher)
            await tg.start(dispatcher.run)
        discovery = anyio.CancelScope()
        tg.start_soon(_discovery_loop, runtime, discovery, name="discovery")
        runtime.ready = True
        try:
            yield runtime
        finally:
            runtime.ready = False
            discovery.cancel()  # nothing to drain; it would hold shutdown till its next round
            if dispatcher is not None:
                # stop leasing; deliveries in flight finish within the dispatcher's own
                # deadline, and whatever is left is recovered by lease expiry on restart
                dispatcher.stop()
                tg.cancel_scope.deadline = anyio.current_time() + SHUTDOWN_GRACE
            else:
                tg.cancel_scope.cancel()
