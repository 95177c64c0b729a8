"""The gateway as tests run it: in-process for one layer's own tests, or the whole app
served on a loopback port (real HTTP, lifespan and all) for integration tests.

    async with in_process(create_graphql_app(runtime)) as http:   # no socket, no lifespan
        await http.post("/graphql", json=...)

    async with running_gateway(tmp_path, monkeypatch) as gw:        # uvicorn on 127.0.0.1
        await gw.http.post("/webhooks/billing", content=body, headers=...)
        await gw.inbox("billing")      # rows of the gateway's inbox table
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import httpx
import orjson
import pytest
from starlette.types import ASGIApp

from canonical import System
from gateway.app import create_app
from gateway.governance.systems import ENV_URLS
from gateway.settings import Settings
from gateway.store import Store, open_store
from tests.servers import free_port, serve
from tests.support.paths import POLICIES
from tests.support.store import sqlite_url


def in_process(app: ASGIApp) -> httpx.AsyncClient:
    """A client that calls ``app`` in this process, at ``http://gateway``."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


@dataclass
class InboxRow:
    event_id: str
    payload: Any
    processed: bool


@dataclass
class Gateway:
    url: str
    db: Path
    store: Store  # a second connection to the gateway's database, for reads
    http: httpx.AsyncClient

    async def inbox(self, system: str) -> list[InboxRow]:
        # the store has no listing of the inbox (processes look events up by id)
        async with aiosqlite.connect(self.db) as db:
            cursor = await db.execute(
                "SELECT event_id, payload, processed_at FROM inbox WHERE system = ? "
                "ORDER BY received_at",
                (system,),
            )
            rows = await cursor.fetchall()
        return [InboxRow(r[0], orjson.loads(r[1]), r[2] is not None) for r in rows]


@asynccontextmanager
async def running_gateway(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    port: int | None = None,
    urls: dict[System, str] | None = None,
) -> AsyncIterator[Gateway]:
    """The real gateway app (receiver only: no dispatcher, feeds or discovery) on a loopback
    port, its store in ``tmp_path``; systems not in ``urls`` point at a closed port."""
    closed = f"http://127.0.0.1:{free_port()}"
    for system in System:
        monkeypatch.setenv(ENV_URLS[system], (urls or {}).get(system, closed))
    db = tmp_path / "gateway.db"
    settings = Settings(
        var_dir=tmp_path / "var",
        store_url=sqlite_url(tmp_path, db.name),
        policies_dir=POLICIES,
        dispatcher=False,
        # the receiver alone: no read model consumer handles (and marks) the events
        feeds=False,
        discovery_interval=0,
        profile="sandbox",
    )
    async with (
        serve(create_app(settings), port) as url,
        open_store(sqlite_url(tmp_path, db.name)) as store,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
    ):
        yield Gateway(url, db, store, http)
