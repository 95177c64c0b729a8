"""Shared by the billing connector tests: the connector against the real billing sandbox on
loopback.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from actors.billing import BillingConnector
from actors.connector import Endpoint
from sandbox.app import SandboxConfig
from sandbox.billing import create_app
from sandbox.demo import generate
from tests.servers import serve

KEY = "sk_test_crosswalk"

CUSTOMERS = 20

DEMO = generate(CUSTOMERS, 42)


@dataclasses.dataclass
class Rig:
    connector: BillingConnector
    control: httpx.AsyncClient
    url: str

    async def chaos(self, **settings: Any) -> None:
        response = await self.control.put("/_sandbox/chaos", json=settings)
        assert response.status_code == 200, response.text

    async def calls(self) -> dict[str, int]:
        stats: dict[str, int] = (await self.control.get("/_sandbox/stats")).json()["by_route"]
        return stats


@asynccontextmanager
async def rig(tmp_path: Path, *, key: str = KEY) -> AsyncIterator[Rig]:
    config = SandboxConfig.for_system(
        "billing", data_dir=tmp_path, gateway_url=None, customers=CUSTOMERS
    )
    async with serve(create_app(config)) as url, httpx.AsyncClient(base_url=url) as control:
        endpoint = Endpoint(base_url=url, credentials={"api_key": key}, timeout=5.0)
        async with BillingConnector(endpoint) as connector:
            yield Rig(connector, control, url)
