"""Shared by the CRM connector tests: the connector against the real CRM sandbox on loopback."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from actors.connector import Endpoint
from actors.crm import CrmConnector
from sandbox.app import SandboxConfig
from sandbox.crm import create_app
from sandbox.demo import generate
from tests.servers import serve

TOKEN = "00DSANDBOX!crosswalk"

BASE = "/services/data/v60.0"

CUSTOMERS = 20

DEMO = generate(CUSTOMERS, 42)


@asynccontextmanager
async def running(
    tmp_path: Path,
    *,
    token: str = TOKEN,
    call_timeout: float = 5.0,
    app_options: dict[str, Any] | None = None,
    **changes: Any,
) -> AsyncIterator[tuple[CrmConnector, httpx.AsyncClient]]:
    """(an open connector, a client on the sandbox root carrying the token)."""
    config = SandboxConfig.for_system(
        "crm", data_dir=tmp_path, gateway_url=None, customers=CUSTOMERS
    )
    app = create_app(dataclasses.replace(config, **changes), **(app_options or {}))
    async with serve(app) as url:
        endpoint = Endpoint(
            url, {"access_token": token}, timeout=call_timeout, client_name="crosswalk-test"
        )
        async with (
            CrmConnector(endpoint) as connector,
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as root,
        ):
            yield connector, root


async def _routes(root: httpx.AsyncClient) -> dict[str, int]:
    routes: dict[str, int] = (await root.get("/_sandbox/stats")).json()["by_route"]
    return routes
