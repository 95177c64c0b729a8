"""The loopback sandbox stack (tests/support/stack.py: the four sandbox systems over
loopback HTTP, real actors, a real store) with discovery run, and the read model with its
feeds, behind the GraphQL app (the read side, called in-process)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
from gateway.store import Store
from tests.graphql.conftest import PORTAL, Settings, read_schema
from tests.support.gateway import in_process
from tests.support.paths import POLICIES
from tests.support.stack import SandboxStack, sandbox_stack

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
    folder: Path = POLICIES


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
class RMStack(SandboxStack):
    runtime: Runtime
    #: the GraphQL app's client (in-process)
    http: httpx.AsyncClient
    tg: TaskGroup

    @property
    def model(self) -> ReadModel:
        return self.runtime.read_model

    @property
    def feeds(self) -> Feeds:
        return self.runtime.feeds

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
    """``system_changes``: SystemPolicy fields replaced for every system."""
    async with sandbox_stack(tmp_path, customers=customers, **system_changes) as base:
        store, systems = base.store, base.systems
        await discover(store, systems)
        readmodel = policy or load_readmodel_policy(POLICIES / "readmodel.toml")
        clients = load_clients_policy(POLICIES / "clients.toml")
        model = ReadModel(store, system_feeds())
        await model.load()
        rates = {s: p.rate.per_second for s, p in systems.policy.systems.items()}
        quota = Quota(rates, readmodel.quota)
        feeds = Feeds(model, systems, quota, readmodel)
        runtime = Runtime(
            Settings(),
            Policies(clients, readmodel, load_reference(POLICIES / "reference.toml")),
            store,
            systems,
            model,
            quota,
            feeds,
        )
        async with (
            in_process(create_graphql_app(runtime, schema=read_schema())) as http,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(model.write_read_throughs)
            yield RMStack(base.sandboxes, store, systems, runtime, http, tg)
            tg.cancel_scope.cancel()
