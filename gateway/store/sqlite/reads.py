"""The reads on one SQLite connection: the dialect's pieces of ``SQLReader``."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final

from gateway.store.errors import ConstraintViolation
from gateway.store.sql.reads import SQLReader
from gateway.store.sql.rows import Row, xref_select
from gateway.store.sqlite.connection import Connection

__all__ = ["SQLiteDialect", "SQLiteReader", "violation"]

_XREF_SELECT: Final = xref_select("group_concat(a.alias, char(31))")


class SQLiteDialect:
    """What SQLite writes its own way."""

    XREF_SELECT = _XREF_SELECT
    LIKE_ANY_CASE = "LIKE"
    GREATEST = "max"
    # each aggregate's oldest open message is its head: no scan of the whole outbox
    OLDEST_OPEN = (
        "SELECT min(o.created_at) FROM outbox_heads h JOIN outbox o ON o.id = h.message_id "
        "WHERE o.status IN ('pending', 'leased')"
    )

    def _input_field_equals(self, field: str) -> tuple[str, str]:
        return "json_extract(input, ?) = ?", f'$."{field}"'


class SQLiteReader(SQLiteDialect, SQLReader):
    """The ``Reader`` queries on a pooled read connection (the caller holds it alone)."""

    def __init__(self, conn: Connection, clock: Callable[[], datetime]) -> None:
        super().__init__(clock)
        self._conn = conn

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self._conn.fetchall(sql, params)


def violation(exc: sqlite3.IntegrityError) -> ConstraintViolation:
    return ConstraintViolation(
        f"the write broke a database rule ({exc}): an id used twice, or a reference to a "
        "record that does not exist; nothing of this transaction is kept"
    )
