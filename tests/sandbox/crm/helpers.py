"""Shared by the CRM sandbox tests: the running sandbox, the demo world and the wire helpers."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from sandbox.app import SandboxConfig
from sandbox.crm import create_app
from sandbox.demo import generate
from tests.servers import serve

TOKEN = "00DSANDBOX!crosswalk"

BASE = "/services/data/v60.0"

CUSTOMERS = 20

DEMO = generate(CUSTOMERS, 42)

OPPS = [(c, o) for c in DEMO.companies for o in c.opportunities]


def _config(tmp_path: Path, **changes: object) -> SandboxConfig:
    config = SandboxConfig.for_system(
        "crm", data_dir=tmp_path, gateway_url=None, customers=CUSTOMERS
    )
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


@asynccontextmanager
async def running(
    tmp_path: Path, *, app_options: dict[str, Any] | None = None, **changes: object
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """(api client on /services/data/v60.0 with the token, bare client on the root)."""
    app = create_app(_config(tmp_path, **changes), **(app_options or {}))
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url + BASE, headers={"Authorization": f"Bearer {TOKEN}"}) as api,
        httpx.AsyncClient(base_url=url) as root,
    ):
        yield api, root


async def _query(api: httpx.AsyncClient, soql: str) -> dict[str, Any]:
    response = await api.get("/query", params={"q": soql})
    assert response.status_code == 200, response.text
    return response.json()


async def _query_all(api: httpx.AsyncClient, soql: str) -> list[dict[str, Any]]:
    body = await _query(api, soql)
    records = list(body["records"])
    while not body["done"]:
        response = await api.get(body["nextRecordsUrl"].removeprefix(BASE))
        assert response.status_code == 200, response.text
        body = response.json()
        records.extend(body["records"])
    return records


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body, list), body
    assert body[0]["errorCode"] == code, body
    assert body[0]["message"]
    return body[0]


async def _count(api: httpx.AsyncClient, obj: str) -> int:
    return int((await _query(api, f"SELECT COUNT() FROM {obj}"))["totalSize"])


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
