"""The store test suite runs once per backend.

Every test asks for ``store`` (an open store on a fresh database) or ``store_url`` (to open
more stores on the same database, as other processes would). To run the suite against
another backend, add its name to ``BACKENDS`` and a branch in ``store_url`` that returns
a URL to a fresh, empty database; nothing else changes. A test specific to one backend
says so with ``@pytest.mark.parametrize("backend", [...], indirect=True)`` and why in its
docstring.

PostgreSQL: each test gets a database of its own (``tests.support.store.postgres_url``),
dropped afterwards; a server that cannot be reached fails the test with the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.store import Store, open_store
from tests.support.store import postgres_url

BACKENDS = ["sqlite", "postgresql"]


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
def store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    elif backend == "postgresql":
        with postgres_url() as url:
            yield url
    else:
        raise AssertionError(f"no database for backend {backend!r}")


@pytest.fixture
def latest_version(backend: str) -> int:
    """The schema version this code migrates the backend's database to."""
    if backend == "sqlite":
        from gateway.store.sqlite.migrations import LATEST_VERSION
    else:
        from gateway.store.postgres.migrations import LATEST_VERSION
    return LATEST_VERSION


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
async def store(store_url: str, clock: FakeClock) -> AsyncIterator[Store]:
    async with open_store(store_url, clock=clock) as opened:
        yield opened
