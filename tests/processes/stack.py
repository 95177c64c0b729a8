"""The real thing in one test process: four sandbox apps on loopback, the four actors with
their real connectors, a SQLite store in tmp_path, the write path and the dispatcher.

    async with sandbox_stack(tmp_path, customers=20) as stack:
        view = await stack.write.submit("closeOpportunity", {...}, ...)
        await wait_for(stack.store, view.id)
        stack.demo   # the demo world the sandboxes were seeded with
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx

from actors import Systems
from canonical import System
from gateway.governance.reference import load_reference
from gateway.governance.systems import ENV_URLS, SystemsPolicy, load_systems_policy
from gateway.processes.commands import WritePath
from gateway.processes.dispatcher import Dispatcher
from gateway.processes.policy import DispatchPolicy
from gateway.store import Store, open_store
from sandbox import billing, crm, erp, support
from sandbox.app import SandboxConfig
from sandbox.demo import DemoData, generate
from tests.servers import serve
from tests.support.paths import ROOT

#: policy for tests: quick retries and defers, short leases
TEST_DISPATCH = DispatchPolicy(
    workers=16,
    lease_seconds=10.0,
    delivery_timeout=5.0,
    max_attempts=6,
    backoff_base=0.05,
    backoff_cap=0.5,
    defer_seconds=0.2,
    poll_interval=0.1,
    drain_seconds=5.0,
)

_APPS = {
    System.ERP: lambda c: erp.create_app(c, rate=1000.0, burst=1000),
    System.BILLING: lambda c: billing.create_app(c, rate_per_second=1000.0, rate_burst=1000.0),
    System.CRM: lambda c: crm.create_app(c, per_second=1000.0, burst=1000),
    System.SUPPORT: lambda c: support.create_app(c, rate_limit=100_000),
}


@dataclass
class Stack:
    urls: dict[System, str]
    store: Store
    systems: Systems
    write: WritePath
    dispatcher: Dispatcher
    demo: DemoData
    http: httpx.AsyncClient
    task_group: Any = None

    async def start_dispatcher(self) -> None:
        await self.task_group.start(self.dispatcher.run)

    async def chaos(self, system: System, **settings: Any) -> None:
        answer = await self.http.put(f"{self.urls[system]}/_sandbox/chaos", json=settings)
        answer.raise_for_status()


def systems_policy(urls: dict[System, str], **overrides: Any) -> SystemsPolicy:
    """The shipped systems policy pointed at ``urls``, rates lifted for tests, no pings."""
    environ = {ENV_URLS[s]: url for s, url in urls.items()}
    shipped = load_systems_policy(ROOT / "policies" / "systems.toml", environ=environ)
    systems = {}
    for system, policy in shipped.systems.items():
        rate = dataclasses.replace(policy.rate, per_second=500.0, burst=500)
        systems[system] = dataclasses.replace(
            policy, rate=rate, health_interval=0.0, **overrides.get(system.value, {})
        )
    return dataclasses.replace(shipped, systems=systems)


@asynccontextmanager
async def sandbox_stack(
    tmp_path: Path,
    *,
    customers: int = 20,
    dispatch: DispatchPolicy = TEST_DISPATCH,
    run_dispatcher: bool = True,
    **policy_overrides: Any,
) -> AsyncIterator[Stack]:
    async with AsyncExitStack() as stack:
        urls: dict[System, str] = {}
        for system, factory in _APPS.items():
            config = SandboxConfig.for_system(
                system.value, data_dir=tmp_path / "sandbox", gateway_url=None, customers=customers
            )
            urls[system] = await stack.enter_async_context(serve(factory(config)))
        store = await stack.enter_async_context(open_store(f"sqlite:///{tmp_path / 'gw.db'}"))
        systems = await stack.enter_async_context(Systems(systems_policy(urls, **policy_overrides)))
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10.0))
        write = WritePath(store, systems, load_reference(ROOT / "policies" / "reference.toml"))
        dispatcher = Dispatcher(store, systems, policy=dispatch)
        tg = await stack.enter_async_context(anyio.create_task_group())
        running = Stack(urls, store, systems, write, dispatcher, generate(customers), http, tg)
        if run_dispatcher:
            await running.start_dispatcher()
        try:
            yield running
        finally:
            dispatcher.stop()
