"""The four sandbox systems on free loopback ports, and the systems policy pointed at them.

    async with serve_sandboxes(tmp_path / "sandbox", customers=20) as sandboxes:
        await sandboxes[System.CRM].chaos(outage=True)
        policy = systems_policy(urls(sandboxes), rate=500.0)

The actors reach the sandboxes over real HTTP (uvicorn on 127.0.0.1), as they reach the
vendors in production. ``lifted=True`` lifts the sandboxes' own built-in rate limits, so
that only the chaos switches and the actor's policy decide what a test sees.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from starlette.types import ASGIApp

from canonical import System
from gateway.governance.systems import ENV_URLS, SystemsPolicy, load_systems_policy
from sandbox.app import SandboxConfig
from tests.servers import serve
from tests.support.paths import POLICIES

#: calls per second no test comes near: a sandbox limit that never binds
LIFTED = 10_000


def sandbox_app(system: System, config: SandboxConfig, *, lifted: bool = False) -> ASGIApp:
    """The sandbox app of ``system``; with its built-in rate limit lifted if ``lifted``."""
    module = importlib.import_module(f"sandbox.{system.value}")
    if not lifted:
        app: ASGIApp = module.create_app(config)
        return app
    limits: dict[System, dict[str, Any]] = {
        System.ERP: {"rate": float(LIFTED), "burst": LIFTED},
        System.BILLING: {"rate_per_second": float(LIFTED), "rate_burst": float(LIFTED)},
        System.CRM: {"per_second": float(LIFTED), "burst": LIFTED},
        System.SUPPORT: {"rate_limit": LIFTED * 100},  # Zendesk counts per minute
    }
    lifted_app: ASGIApp = module.create_app(config, **limits[system])
    return lifted_app


@dataclass
class Sandbox:
    """One served sandbox system and its control endpoints (``/_sandbox/*``)."""

    system: System
    url: str
    http: httpx.AsyncClient

    async def chaos(self, **settings: object) -> None:
        answer = await self.http.put(f"{self.url}/_sandbox/chaos", json=settings)
        assert answer.status_code == 200, answer.text

    async def reset(self) -> None:
        answer = await self.http.post(f"{self.url}/_sandbox/reset")
        assert answer.status_code == 200, answer.text

    async def stats(self) -> dict[str, Any]:
        answer = await self.http.get(f"{self.url}/_sandbox/stats")
        assert answer.status_code == 200, answer.text
        stats: dict[str, Any] = answer.json()
        return stats

    async def requests(self) -> int:
        """Vendor calls the system has received since the last reset."""
        return int((await self.stats())["requests"])

    async def until_requests(self, count: int, *, within: float = 5.0) -> None:
        """Wait until the system has received ``count`` vendor calls since the last reset."""
        with anyio.fail_after(within):
            while await self.requests() < count:  # noqa: ASYNC110 - another server's count
                await anyio.sleep(0.005)

    async def timestamps(self) -> list[float]:
        """When each vendor call arrived (``time.monotonic``, the clock anyio uses too)."""
        return [float(t) for t in (await self.stats())["timestamps"]]


@asynccontextmanager
async def serve_sandboxes(
    data_dir: Path, *, customers: int = 20, lifted: bool = False
) -> AsyncIterator[dict[System, Sandbox]]:
    """All four sandbox apps on free loopback ports, data in ``data_dir``, no webhooks."""
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10.0))
        sandboxes = {}
        for system in System:
            config = SandboxConfig.for_system(
                system.value, data_dir=data_dir, gateway_url=None, customers=customers
            )
            url = await stack.enter_async_context(serve(sandbox_app(system, config, lifted=lifted)))
            sandboxes[system] = Sandbox(system, url, http)
        yield sandboxes


def urls(sandboxes: Mapping[System, Sandbox]) -> dict[System, str]:
    return {system: sandbox.url for system, sandbox in sandboxes.items()}


def systems_policy(
    urls: Mapping[System, str],
    *,
    rate: float | None = None,
    per_system: Mapping[System, Mapping[str, Any]] | None = None,
    **each: Any,
) -> SystemsPolicy:
    """policies/systems.toml pointed at ``urls``, without health pings; with ``rate`` (calls
    per second, and as many in a burst) when given, the SystemPolicy fields in ``each``
    replaced for every system, then those in ``per_system`` for that system alone."""
    environ = {ENV_URLS[system]: url for system, url in urls.items()}
    shipped = load_systems_policy(POLICIES / "systems.toml", environ=environ)
    systems = {}
    for system, policy in shipped.systems.items():
        changed = dataclasses.replace(policy, health_interval=0.0, **each)
        if rate is not None:
            limit = dataclasses.replace(policy.rate, per_second=rate, burst=int(rate))
            changed = dataclasses.replace(changed, rate=limit)
        systems[system] = dataclasses.replace(changed, **(per_system or {}).get(system, {}))
    return dataclasses.replace(shipped, systems=systems)
