"""The gateway app served on a loopback port with a real SQLite store in tmp_path.

async with running_gateway(tmp_path, monkeypatch) as gw:
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

from canonical import System
from gateway.app import create_app
from gateway.governance.systems import ENV_URLS
from gateway.settings import Settings
from gateway.store import Store, open_store
from tests.servers import free_port, serve
from tests.support.paths import ROOT


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
    """The real gateway app; systems not in ``urls`` point at a closed port."""
    closed = f"http://127.0.0.1:{free_port()}"
    for system in System:
        monkeypatch.setenv(ENV_URLS[system], (urls or {}).get(system, closed))
    db = tmp_path / "gateway.db"
    settings = Settings(
        var_dir=tmp_path / "var",
        store_url=f"sqlite:///{db}",
        policies_dir=ROOT / "policies",
        dispatcher=False,
        # the receiver alone: no read model consumer handles (and marks) the events
        feeds=False,
        discovery_interval=0,
        profile="sandbox",
    )
    async with (
        serve(create_app(settings), port) as url,
        open_store(f"sqlite:///{db}") as store,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
    ):
        yield Gateway(url, db, store, http)
