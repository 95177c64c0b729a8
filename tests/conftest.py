"""Fixtures every test package may use; builders behind them live in tests/support.

- ``store_url``: a fresh SQLite database in the test's tmp_path.
- ``store``: that database opened through ``gateway.store.open_store``.

tests/store overrides both (one run per backend, a hand-moved clock).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store import Store, open_store
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
