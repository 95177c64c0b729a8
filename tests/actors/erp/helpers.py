"""Shared by the ERP connector tests: the connector against the real ERP sandbox on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from actors.connector import Endpoint
from actors.erp import ErpConnector
from sandbox.app import SandboxConfig
from sandbox.erp import create_app
from tests.servers import serve

BP = "/sap/opu/odata/sap/API_BUSINESS_PARTNER"


CREDENTIALS = {"username": "sandbox", "password": "sandbox"}


@dataclass
class Env:
    erp: ErpConnector
    http: httpx.AsyncClient  # the test's own view of the sandbox

    async def routes(self) -> dict[str, int]:
        stats: dict[str, int] = (await self.http.get("/_sandbox/stats")).json()["by_route"]
        return dict(stats)

    async def chaos(self, **settings: Any) -> None:
        response = await self.http.put("/_sandbox/chaos", json=settings)
        assert response.status_code == 200

    async def count(self, entity_set: str, expression: str) -> int:
        response = await self.http.get(
            f"/sap/opu/odata/sap/{entity_set}/$count", params={"$filter": expression}
        )
        assert response.status_code == 200, response.text
        return int(response.text)


@asynccontextmanager
async def environment(
    tmp_path: Any,
    credentials: dict[str, str] = CREDENTIALS,
    *,
    bounds: dict[str, int] | None = None,
    **app_options: Any,
) -> AsyncIterator[Env]:
    config = SandboxConfig.for_system(
        "erp", data_dir=tmp_path, gateway_url=None, customers=20, fresh=True
    )
    async with (
        serve(create_app(config, **app_options)) as url,
        httpx.AsyncClient(base_url=url, auth=("sandbox", "sandbox")) as http,
        ErpConnector(Endpoint(url, credentials, timeout=5.0, **(bounds or {}))) as erp,
    ):
        yield Env(erp, http)


def delta(before: dict[str, int], after: dict[str, int], route: str) -> int:
    return after.get(route, 0) - before.get(route, 0)
