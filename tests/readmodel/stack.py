"""The four sandbox systems over loopback HTTP, real actors, a real store, and the read
model with its feeds, behind the GraphQL app (the read side)."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from anyio.abc import TaskGroup

from actors import Systems
from canonical import System
from gateway.governance.clients import ClientsPolicy, load_clients_policy
from gateway.governance.readmodel import ReadModelPolicy, load_readmodel_policy
from gateway.governance.reference import ReferenceData, load_reference
from gateway.graphql.app import create_graphql_app
from gateway.processes.discovery import discover
from gateway.readmodel.feeds import Feeds, system_feeds
from gateway.readmodel.model import ReadModel
from gateway.readmodel.quota import Quota
from gateway.store import Store, open_store
from sandbox.app import SandboxConfig
from tests.graphql.conftest import Settings, read_schema
from tests.graphql.stack import systems_policy
from tests.servers import serve
from tests.support.paths import ROOT

PORTAL = {"Authorization": "Bearer demo-portal-key"}

CUSTOMER_360 = """
query($id: ID!, $maxAge: Int) {
  customer(id: $id, maxAge: $maxAge) {
    identity { erp billing crm support }
    golden { name email segment supportTier }
    orders(first: 100) { nodes { id status } }
    subscriptions(first: 100) { nodes { id status } }
    invoices(first: 100) { nodes { id status } }
    balance { amountDue openInvoices }
    opportunities(first: 100) { nodes { id stage } }
    cases(first: 100) { nodes { id status subject } }
    entitlements { nodes { status } }
    freshness { system stale ageSeconds reason errorCode source }
  }
}
"""


@dataclass
class Policies:
    clients: ClientsPolicy
    readmodel: ReadModelPolicy
    reference: ReferenceData
    folder: Path = ROOT / "policies"


@dataclass
class Runtime:
    settings: Any
    policies: Policies
    store: Store
    systems: Systems
    read_model: ReadModel
    quota: Quota
    feeds: Feeds


@dataclass
class RMStack:
    urls: dict[System, str]
    runtime: Runtime
    http: httpx.AsyncClient
    sandbox: httpx.AsyncClient
    tg: TaskGroup

    @property
    def model(self) -> ReadModel:
        return self.runtime.read_model

    @property
    def feeds(self) -> Feeds:
        return self.runtime.feeds

    async def requests(self, system: System) -> int:
        response = await self.sandbox.get(f"{self.urls[system]}/_sandbox/stats")
        count: int = response.json()["requests"]
        return count

    async def chaos(self, system: System, **settings: Any) -> None:
        response = await self.sandbox.put(f"{self.urls[system]}/_sandbox/chaos", json=settings)
        response.raise_for_status()

    async def read(self, customer: str, **variables: Any) -> dict[str, Any]:
        response = await self.http.post(
            "/graphql",
            json={"query": CUSTOMER_360, "variables": {"id": customer, **variables}},
            headers=PORTAL,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def freshness(self, body: dict[str, Any], system: System) -> dict[str, Any]:
        rows = body["data"]["customer"]["freshness"]
        return next(r for r in rows if r["system"] == system.name)

    async def catch_up_all(self) -> None:
        for system in System:
            await self.feeds.catch_up(system)

    async def reload(self) -> ReadModel:
        """A new process's memory: the read model loaded back from the store."""
        fresh = ReadModel(self.runtime.store, system_feeds())
        await fresh.load()
        self.tg.start_soon(fresh.write_read_throughs)
        self.runtime.read_model = fresh
        self.runtime.feeds = Feeds(
            fresh, self.runtime.systems, self.runtime.quota, self.runtime.policies.readmodel
        )
        return fresh


@asynccontextmanager
async def open_rm_stack(
    tmp_path: Path,
    *,
    customers: int = 10,
    policy: ReadModelPolicy | None = None,
    **system_changes: Any,
) -> AsyncIterator[RMStack]:
    async with AsyncExitStack() as stack:
        urls: dict[System, str] = {}
        for system in System:
            module = importlib.import_module(f"sandbox.{system.value}")
            config = SandboxConfig.for_system(
                system.value, data_dir=tmp_path / "sandbox", gateway_url=None, customers=customers
            )
            urls[system] = await stack.enter_async_context(serve(module.create_app(config)))
        store = await stack.enter_async_context(open_store(f"sqlite:///{tmp_path / 'cw.db'}"))
        systems_p = systems_policy(urls, **system_changes)
        systems = await stack.enter_async_context(Systems(systems_p))
        await discover(store, systems)
        readmodel = policy or load_readmodel_policy(ROOT / "policies" / "readmodel.toml")
        clients = load_clients_policy(ROOT / "policies" / "clients.toml")
        model = ReadModel(store, system_feeds())
        await model.load()
        quota = Quota({s: p.rate.per_second for s, p in systems_p.systems.items()}, readmodel.quota)
        feeds = Feeds(model, systems, quota, readmodel)
        runtime = Runtime(
            Settings(),
            Policies(clients, readmodel, load_reference(ROOT / "policies" / "reference.toml")),
            store,
            systems,
            model,
            quota,
            feeds,
        )
        app = create_graphql_app(runtime, schema=read_schema())
        http = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")
        )
        sandbox = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        async with anyio.create_task_group() as tg:
            tg.start_soon(model.write_read_throughs)
            yield RMStack(urls, runtime, http, sandbox, tg)
            tg.cancel_scope.cancel()
