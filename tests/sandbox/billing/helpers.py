"""Shared by the billing sandbox tests: the running sandbox, the demo world and the wire helpers."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from sandbox.app import SandboxConfig
from sandbox.billing import create_app
from sandbox.demo import generate
from tests.servers import serve

KEY = "sk_test_crosswalk"


CUSTOMERS = 20

DEMO = generate(CUSTOMERS, 42)


def _config(tmp_path: Path, **changes: object) -> SandboxConfig:
    config = SandboxConfig.for_system(
        "billing", data_dir=tmp_path, gateway_url=None, customers=CUSTOMERS
    )
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


@asynccontextmanager
async def running(
    tmp_path: Path, *, app_options: dict[str, Any] | None = None, **changes: object
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """(client with the API key, bare client) against a served billing sandbox."""
    app = create_app(_config(tmp_path, **changes), **(app_options or {}))
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as api,
        httpx.AsyncClient(base_url=url) as bare,
    ):
        yield api, bare


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["type"] in (
        "invalid_request_error",
        "api_error",
        "card_error",
        "idempotency_error",
    )
    assert error["message"]
    return error


async def _walk(api: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    query = {"limit": 7, **params}
    while True:
        response = await api.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["object"] == "list"
        assert page["url"] == path
        items.extend(page["data"])
        if not page["has_more"]:
            return items
        query["starting_after"] = page["data"][-1]["id"]
