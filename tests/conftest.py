"""Fixtures every test package may use; builders behind them live in tests/support.

- ``store_url``: a fresh SQLite database in the test's tmp_path.
- ``store``: that database opened through ``gateway.store.open_store``.
- ``served_gateway``: the real gateway app on a loopback port, its own store in tmp_path
  (``tests.support.gateway.running_gateway`` with its defaults).

tests/store overrides both (one run per backend, a hand-moved clock).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store import Store, open_store
from tests.support.gateway import Gateway, running_gateway
from tests.support.store import sqlite_url


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as opened:
        yield opened


@pytest.fixture
async def served_gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path, monkeypatch) as gateway:
        yield gateway
