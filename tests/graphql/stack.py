"""The loopback sandbox stack (tests/support/stack.py) with discovery run and the GraphQL
app in front of it, called in-process; the actors reach the sandboxes over real HTTP.

async with open_stack(tmp_path) as stack:
    response = await stack.http.post("/graphql", json=..., headers=PORTAL)
    await stack.requests(System.SUPPORT)   # the sandbox's own request count
    await stack.chaos(System.BILLING, outage=True)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.governance.clients import load_clients_policy
from gateway.graphql.app import create_graphql_app
from gateway.processes.discovery import DiscoveryReport, discover
from tests.graphql.conftest import Policies, Runtime, Settings, read_schema
from tests.support.gateway import in_process
from tests.support.paths import POLICIES
from tests.support.stack import SandboxStack, sandbox_stack


@dataclass
class Stack(SandboxStack):
    runtime: Runtime
    #: the GraphQL app's client (in-process)
    http: httpx.AsyncClient
    discovery: DiscoveryReport


@asynccontextmanager
async def open_stack(
    tmp_path: Path, *, customers: int = 20, discovery: bool = True, **policy: Any
) -> AsyncIterator[Stack]:
    """``policy``: SystemPolicy fields replaced for every system."""
    async with sandbox_stack(tmp_path, customers=customers, **policy) as base:
        report = await discover(base.store, base.systems) if discovery else DiscoveryReport()
        clients = load_clients_policy(POLICIES / "clients.toml")
        runtime = Runtime(Settings(), Policies(clients), base.store, base.systems)
        async with in_process(create_graphql_app(runtime, schema=read_schema())) as http:
            yield Stack(base.sandboxes, base.store, base.systems, runtime, http, report)
