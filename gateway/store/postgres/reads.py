"""The reads on one PostgreSQL connection: the dialect's pieces of ``SQLReader``, and the
translation of the shared SQL's ``?`` placeholders to asyncpg's ``$n``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final

import asyncpg

from gateway.store.errors import ConstraintViolation
from gateway.store.sql.reads import SQLReader
from gateway.store.sql.rows import Row, xref_select

__all__ = ["PostgresDialect", "PostgresReader", "dollars", "rowcount", "violation"]

_XREF_SELECT: Final = xref_select("string_agg(a.alias, chr(31))")


@functools.lru_cache(maxsize=2048)
def dollars(sql: str) -> str:
    """``sql`` with SQLite's placeholders as PostgreSQL's: ``?N`` becomes ``$N`` and a bare
    ``?`` the number after the highest so far (SQLite's rule); string literals are left
    alone."""
    out: list[str] = []
    highest = 0
    quoted = False
    i = 0
    while i < len(sql):
        char = sql[i]
        if char == "'":
            quoted = not quoted
        elif char == "?" and not quoted:
            j = i + 1
            while j < len(sql) and sql[j].isdigit():
                j += 1
            number = int(sql[i + 1 : j]) if j > i + 1 else highest + 1
            highest = max(highest, number)
            out.append(f"${number}")
            i = j
            continue
        out.append(char)
        i += 1
    return "".join(out)


def rowcount(status: str) -> int:
    """The row count in a command status (``UPDATE 3``, ``INSERT 0 1``, ``DELETE 0``)."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1


def violation(exc: asyncpg.IntegrityConstraintViolationError) -> ConstraintViolation:
    return ConstraintViolation(
        f"the write broke a database rule ({exc}): an id used twice, or a reference to a "
        "record that does not exist; nothing of this transaction is kept"
    )


class PostgresDialect:
    """What PostgreSQL writes its own way."""

    XREF_SELECT = _XREF_SELECT
    LIKE_ANY_CASE = "ILIKE"
    GREATEST = "greatest"
    OLDEST_OPEN = "SELECT min(created_at) FROM outbox WHERE status IN ('pending', 'leased')"

    def _input_field_equals(self, field: str) -> tuple[str, str]:
        return "(input::jsonb ->> ?) = ?", field


class PostgresReader(PostgresDialect, SQLReader):
    """The ``Reader`` queries on one pooled connection (the caller holds it alone)."""

    def __init__(self, conn: asyncpg.Connection, clock: Callable[[], datetime]) -> None:
        super().__init__(clock)
        self._conn = conn

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        rows: list[Row] = await self._conn.fetch(dollars(sql), *params)
        return rows
