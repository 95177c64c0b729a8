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
from typing import Any, cast

import aiosqlite

__all__ = ["Statement", "run_statements"]

Statement = tuple[str, Sequence[Any]]

_IN_THREAD: Callable[..., Any] | None = getattr(aiosqlite.Connection, "_execute", None)


def _run_in_thread(
    raw: sqlite3.Connection,
    statements: Sequence[Statement],
    final: Statement | None,
    progress: list[int],
) -> tuple[list[Any], int]:
    for sql, params in statements:
        raw.execute(sql, params)
        progress[0] += 1
    if final is None:
        return [], -1
    cursor = raw.execute(*final)
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
    for sql, params in statements:  # fallback: one round trip each
        await conn.execute(sql, params)
        progress[0] += 1
    if final is None:
        return [], -1
    cursor = await conn.execute(*final)
    rows = list(await cursor.fetchall())
    return rows, cursor.rowcount
