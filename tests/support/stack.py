"""The loopback sandbox stack: the four sandbox systems on loopback ports, the four actors
with their real connectors pointed at them, and a SQLite store in the test's folder.

    async with sandbox_stack(tmp_path, customers=20) as stack:
        stack.systems[System.ERP]          # a real actor, reaching the ERP sandbox over HTTP
        await stack.chaos(System.BILLING, outage=True)
        await stack.requests(System.CRM)   # the sandbox's own count of vendor calls

The GraphQL, write-path and read-model stacks (tests/graphql/stack.py,
tests/processes/stack.py, tests/readmodel/stack.py) are this stack plus what they test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from actors import Systems
from canonical import System
from gateway.store import Store, open_store
from tests.support.sandboxes import Sandbox, serve_sandboxes, systems_policy, urls
from tests.support.store import sqlite_url


@dataclass
class SandboxStack:
    sandboxes: dict[System, Sandbox]
    store: Store
    systems: Systems

    @property
    def urls(self) -> dict[System, str]:
        return urls(self.sandboxes)

    @property
    def sandbox(self) -> httpx.AsyncClient:
        """A plain HTTP client, for the sandboxes' own endpoints."""
        return self.sandboxes[System.ERP].http

    async def chaos(self, system: System, **settings: Any) -> None:
        await self.sandboxes[system].chaos(**settings)

    async def requests(self, system: System) -> int:
        return await self.sandboxes[system].requests()


@asynccontextmanager
async def sandbox_stack(
    tmp_path: Path,
    *,
    customers: int = 20,
    lifted: bool = False,
    rate: float | None = None,
    per_system: Mapping[System, Mapping[str, Any]] | None = None,
    **each: Any,
) -> AsyncIterator[SandboxStack]:
    """The sandboxes (data in ``tmp_path / "sandbox"``, ``customers`` demo customers, their
    own rate limits lifted if ``lifted``), the store, and the actors under
    ``systems_policy(urls, rate=rate, per_system=per_system, **each)``. Leaving the block
    closes the actors, the store and the servers, in that order."""
    async with AsyncExitStack() as stack:
        sandboxes = await stack.enter_async_context(
            serve_sandboxes(tmp_path / "sandbox", customers=customers, lifted=lifted)
        )
        store = await stack.enter_async_context(open_store(sqlite_url(tmp_path)))
        policy = systems_policy(urls(sandboxes), rate=rate, per_system=per_system, **each)
        systems = await stack.enter_async_context(Systems(policy))
        yield SandboxStack(sandboxes, store, systems)
