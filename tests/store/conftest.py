"""The store test suite runs once per backend.

Every test asks for ``store`` (an open store on a fresh database) or ``store_url`` (to open
more stores on the same database, as other processes would). To run the suite against
another backend, add its name to ``BACKENDS`` and a branch in ``store_url`` that returns
a URL to a fresh, empty database; nothing else changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.store import Store, open_store

BACKENDS = ["sqlite"]


class FakeClock:
    """A clock the test moves by hand, so expiry and leases need no sleeping."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    raise AssertionError(f"no database for backend {backend!r}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
async def store(store_url: str, clock: FakeClock) -> AsyncIterator[Store]:
    async with open_store(store_url, clock=clock) as opened:
        yield opened
