"""The store as tests open it: a SQLite file in the test's own folder, or a PostgreSQL
database of the test's own.

The ``store`` and ``store_url`` fixtures (tests/conftest.py) are built from these; the
store suite (tests/store) overrides both to run once per backend.

PostgreSQL: ``postgres_url()`` makes a database (``cw_test_<random>``) on the server at
``CROSSWALK_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``) and
drops it afterwards. A server that cannot be reached fails the test with the reason: the
tests never skip a backend silently.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import asyncpg
import pytest

POSTGRES = os.environ.get(
    "CROSSWALK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)

#: the gateway's default database file name
DB_NAME = "crosswalk.db"


def sqlite_url(folder: Path, name: str = DB_NAME) -> str:
    """The URL of a SQLite store in ``folder`` (created on first open)."""
    return f"sqlite:///{folder / name}"


@contextmanager
def postgres_url() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped afterwards."""
    name = f"cw_test_{secrets.token_hex(6)}"
    anyio.run(_admin, f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES.rsplit('/', 1)[0]}/{name}"
    finally:
        anyio.run(_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin(sql: str) -> None:
    """One statement on the server's maintenance database."""
    try:
        conn = await asyncpg.connect(POSTGRES, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL at {POSTGRES} cannot be reached ({exc}): start it (CI's .ci/run "
            "does) or point CROSSWALK_TEST_POSTGRES at one; the postgresql backend's tests "
            "do not skip",
            pytrace=False,
        )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
