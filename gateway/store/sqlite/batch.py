"""Several SQL statements in one hand-off to the connection's thread.

Why: every statement sent on its own hands work to the connection's thread and back,
and on a busy machine that hand-off (thread wake-up, GIL, event loop wake-up) costs far
more than the statement itself. A unit of work's writes whose results the caller does
not need at once (``BEGIN``/``SAVEPOINT``, an operation insert, its saga steps) are
queued and sent together with the next statement that needs an answer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from gateway.store.sql.rows import Row
from gateway.store.sql.unit import Checked, RowCountMismatch, Statement
from gateway.store.sqlite.connection import Connection

__all__ = ["run_statements"]


def _run_in_thread(
    raw: sqlite3.Connection,
    statements: Sequence[Statement],
    final: Statement | None,
    progress: list[int],
) -> tuple[list[Row], int]:
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
    conn: Connection,
    statements: Sequence[Statement],
    final: Statement | None,
    progress: list[int],
) -> tuple[list[Row], int]:
    """Execute ``statements`` in order, then ``final``; return ``final``'s rows and row
    count. ``progress[0]`` is increased for each of ``statements`` that succeeded, so after
    an error the caller knows how far it got."""
    return await conn.call(_run_in_thread, statements, final, progress)
