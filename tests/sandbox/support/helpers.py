"""Shared by the support sandbox tests: the running sandbox, the demo world and the wire helpers."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from sandbox.app import SandboxConfig
from sandbox.demo import generate
from sandbox.support import create_app
from tests.servers import serve

AUTH = "Basic " + base64.b64encode(b"agent@example.com/token:sandbox").decode()

CUSTOMERS = 20

DEMO = generate(CUSTOMERS, 42)

IN_SUPPORT = [c for c in DEMO.companies if c.in_support]


ORG_KEYS = {
    "id", "url", "external_id", "name", "domain_names", "details", "notes", "group_id",
    "shared_tickets", "shared_comments", "tags", "organization_fields", "created_at",
    "updated_at",
}  # fmt: skip


def _config(tmp_path: Path, **changes: object) -> SandboxConfig:
    config = SandboxConfig.for_system(
        "support", data_dir=tmp_path, gateway_url=None, customers=CUSTOMERS
    )
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


@asynccontextmanager
async def running(
    tmp_path: Path, *, rate_limit: int = 700, export_rate_limit: int = 1000, **changes: object
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """(api client on /api/v2 with credentials, bare client on the root)."""
    app = create_app(
        _config(tmp_path, **changes), rate_limit=rate_limit, export_rate_limit=export_rate_limit
    )
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url + "/api/v2", headers={"Authorization": AUTH}) as api,
        httpx.AsyncClient(base_url=url) as root,
    ):
        yield api, root


async def _walk(api: httpx.AsyncClient, path: str, key: str, size: int) -> list[dict]:
    items: list[dict] = []
    params: dict[str, str] = {"page[size]": str(size)}
    for _ in range(100):
        body = (await api.get(path, params=params)).json()
        assert set(body) == {key, "meta", "links"}
        items.extend(body[key])
        if not body["meta"]["has_more"]:
            assert body["links"]["next"] is None
            return items
        assert body["links"]["next"].startswith("http")
        params = {"page[size]": str(size), "page[after]": body["meta"]["after_cursor"]}
    raise AssertionError("pagination did not end")


def _ticket(**fields: object) -> dict:
    return {"ticket": {"subject": "Printer offline", "comment": {"body": "It is off."}, **fields}}
