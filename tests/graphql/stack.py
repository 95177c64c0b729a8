"""The four sandbox systems on loopback ports, real actors, a real store, the GraphQL app.

async with open_stack(tmp_path) as stack:
    response = await stack.http.post("/graphql", json=..., headers=PORTAL)
    await stack.stats(System.SUPPORT)   # the sandbox's own request count
    await stack.chaos(System.BILLING, outage=True)
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from actors import Systems
from canonical import System
from gateway.governance.clients import load_clients_policy
from gateway.governance.systems import ENV_URLS, SystemsPolicy, load_systems_policy
from gateway.graphql.app import create_graphql_app
from gateway.processes.discovery import DiscoveryReport, discover
from gateway.store import open_store
from sandbox.app import SandboxConfig
from tests.graphql.conftest import Policies, Runtime, Settings, read_schema
from tests.servers import serve
from tests.support.paths import ROOT


def systems_policy(urls: dict[System, str], **changes: Any) -> SystemsPolicy:
    """policies/systems.toml pointed at ``urls``, without health pings, with ``changes``."""
    environ = {ENV_URLS[system]: url for system, url in urls.items()}
    policy = load_systems_policy(ROOT / "policies" / "systems.toml", environ=environ)
    systems = {
        system: dataclasses.replace(p, health_interval=0.0, **changes)
        for system, p in policy.systems.items()
    }
    return dataclasses.replace(policy, systems=systems)


@dataclass
class Stack:
    urls: dict[System, str]
    runtime: Runtime
    http: httpx.AsyncClient
    sandbox: httpx.AsyncClient
    discovery: DiscoveryReport

    async def stats(self, system: System) -> int:
        response = await self.sandbox.get(f"{self.urls[system]}/_sandbox/stats")
        requests: int = response.json()["requests"]
        return requests

    async def chaos(self, system: System, **settings: Any) -> None:
        response = await self.sandbox.put(f"{self.urls[system]}/_sandbox/chaos", json=settings)
        response.raise_for_status()


@asynccontextmanager
async def open_stack(
    tmp_path: Path, *, customers: int = 20, discovery: bool = True, **policy: Any
) -> AsyncIterator[Stack]:
    async with AsyncExitStack() as stack:
        urls: dict[System, str] = {}
        for system in System:
            module = importlib.import_module(f"sandbox.{system.value}")
            config = SandboxConfig.for_system(
                system.value, data_dir=tmp_path / "sandbox", gateway_url=None, customers=customers
            )
            urls[system] = await stack.enter_async_context(serve(module.create_app(config)))
        store = await stack.enter_async_context(open_store(f"sqlite:///{tmp_path / 'cw.db'}"))
        systems = await stack.enter_async_context(Systems(systems_policy(urls, **policy)))
        report = await discover(store, systems) if discovery else DiscoveryReport()
        clients = load_clients_policy(ROOT / "policies" / "clients.toml")
        runtime = Runtime(Settings(), Policies(clients), store, systems)
        app = create_graphql_app(runtime, schema=read_schema())
        http = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")
        )
        sandbox = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        yield Stack(urls, runtime, http, sandbox, report)
