"""Several SQL statements in one round trip to aiosqlite's connection thread.

Why: every ``await conn.execute(...)`` hands work to aiosqlite's thread and back, and on a
busy machine that hand-off (thread wake-up, GIL, event loop wake-up) costs far more than
the statement itself. A unit of work's writes whose results the caller does not need at
once (``BEGIN``/``SAVEPOINT``, an operation insert, its saga steps) are queued and sent
together with the next statement that needs an answer.

aiosqlite has no public "run this function in the connection's thread"; its
``Connection._execute`` is that, and has been for every release this project supports
(>= 0.20). If a future release drops it, ``run_statements`` falls back to one public
call per statement: slower, same result.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, cast

import aiosqlite

__all__ = ["Checked", "RowCountMismatch", "Statement", "run_statements"]


class Checked(NamedTuple):
    """A held-back write that must change exactly ``rows`` rows (an update of a leased
    message, of a known operation); ``what`` says to the caller which one it was."""

    sql: str
    params: Sequence[Any]
    rows: int
    what: Any


class RowCountMismatch(Exception):
    """A ``Checked`` statement changed another number of rows than it must."""

    def __init__(self, statement: Checked, rowcount: int) -> None:
        super().__init__(f"{statement.sql!r} changed {rowcount} rows, not {statement.rows}")
        self.statement = statement
        self.rowcount = rowcount


Statement = tuple[str, Sequence[Any]] | Checked

_IN_THREAD: Callable[..., Any] | None = getattr(aiosqlite.Connection, "_execute", None)


def _run_in_thread(
    raw: sqlite3.Connection,
    statements: Sequence[Statement],
    final: Statement | None,
    progress: list[int],
) -> tuple[list[Any], int]:
    for statement in statements:
        cursor = raw.execute(statement[0], statement[1])
        if isinstance(statement, Checked) and cursor.rowcount != statement.rows:
            raise RowCountMismatch(statement, cursor.rowcount)
        progress[0] += 1
    if final is None:
        return [], -1
    cursor = raw.execute(final[0], final[1])
    rows = cursor.fetchall()
    return rows, cursor.rowcount


async def run_statements(
    conn: aiosqlite.Connection,
    statements: Sequence[Statement],
    final: Statement | None,
    progress: list[int],
) -> tuple[list[Any], int]:
    """Execute ``statements`` in order, then ``final``; return ``final``'s rows and row
    count. ``progress[0]`` is increased for each of ``statements`` that succeeded, so after
    an error the caller knows how far it got."""
    try:
        raw = getattr(conn, "_conn", None)
    except ValueError:  # aiosqlite: "no active connection"
        raw = None
    if _IN_THREAD is not None and isinstance(raw, sqlite3.Connection):
        result = await _IN_THREAD(conn, _run_in_thread, raw, statements, final, progress)
        return cast(tuple[list[Any], int], result)
    for statement in statements:  # fallback: one round trip each
        cursor = await conn.execute(statement[0], statement[1])
        if isinstance(statement, Checked) and cursor.rowcount != statement.rows:
            raise RowCountMismatch(statement, cursor.rowcount)
        progress[0] += 1
    if final is None:
        return [], -1
    cursor = await conn.execute(final[0], final[1])
    rows = list(await cursor.fetchall())
    return rows, cursor.rowcount
