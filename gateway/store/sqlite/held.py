"""Units of work that need no answers, many to one round trip (``Store.run_unit``).

Why: the writer connection is one, and a unit holds it from its first statement to its
end. A unit costs at least one hand-off to the connection's thread and back, and the next unit
can start only after the event loop has run the first one's continuation. When the loop
is busy (hundreds of deliveries in flight), each such turn takes milliseconds, so the
writer's throughput falls just when the load rises, steps wait longer, more are in flight,
and the loop gets busier still: a congestion collapse.

The dispatcher's bookkeeping of a delivered step needs no answer from the database
before its end: the message is completed, the step and the next message written, the
operation advanced from the version this process remembers (checked by the write itself)
and the worker's next message leased. Such a unit is built here without a connection
(every write is held back; a read raises ``NeedsAnswer`` and the caller falls back to an
ordinary transaction) and queued. A caller that finds no flush running becomes the
flusher for one batch: it takes the writer once for the oldest units queued meanwhile (up
to ``MAX_UNITS``) and runs them all in one call on the connection's thread, each in its
own savepoint, then the group commit commits them together; then the next caller still
waiting takes its turn. So the writer's throughput grows with the load instead of
shrinking, and no caller flushes for others for longer than its own unit takes.

A unit whose checked write missed its row (a lease lost, an operation changed since) or
that broke a constraint is rolled back to its savepoint alone and reported as
``NeedsAnswer`` too: the ordinary transaction redone by the caller gives the exact error.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import anyio

from gateway.store.errors import StoreError
from gateway.store.sql.rows import Row
from gateway.store.sql.unit import Checked, Statement
from gateway.store.sqlite.transaction import SQLiteTransaction
from gateway.store.sqlite.writer import GroupCommitWriter, UnitStart

__all__ = ["HeldTransaction", "HeldUnits", "NeedsAnswer"]

#: how many held units one round trip carries at most (a bounded batch)
MAX_UNITS = 256


class NeedsAnswer(Exception):
    """The unit needs an answer from the database before its end (a read, or a write
    whose outcome must be known): run it as an ordinary transaction instead."""


class HeldTransaction(SQLiteTransaction):
    """A ``Transaction`` that holds back every write and refuses every read."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        super().__init__(None, clock, start=UnitStart(None, ""))  # type: ignore[arg-type]
        self._pending = []

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        raise NeedsAnswer(sql.split(None, 1)[0])

    async def _execute(self, sql: str, params: Sequence[Any]) -> int:
        raise NeedsAnswer(sql.split(None, 1)[0])

    async def _send(self, final: Statement | None) -> tuple[list[Row], int]:
        raise NeedsAnswer("flush")

    def statements(self) -> list[Statement]:
        return list(self._pending)


class _Unit:
    __slots__ = ("done", "final", "outcome", "statements")

    def __init__(self, statements: list[Statement], final: Statement | None) -> None:
        self.statements = statements
        self.final = final
        self.done = anyio.Event()
        self.outcome: list[Row] | BaseException | None = None


def _run_units(
    raw: sqlite3.Connection, prefix: str, units: Sequence[_Unit], progress: list[int]
) -> list[list[Row] | BaseException]:
    """On the connection's thread: the writer's prefix, then each unit in a savepoint."""
    raw.execute(prefix)
    progress[0] += 1
    outcomes: list[list[Row] | BaseException] = []
    for unit in units:
        raw.execute("SAVEPOINT held")
        try:
            for statement in unit.statements:
                cursor = raw.execute(statement[0], statement[1])
                if isinstance(statement, Checked) and cursor.rowcount != statement.rows:
                    raise NeedsAnswer(f"{statement.what[0]} missed its row")
            rows: list[Row] = []
            if unit.final is not None:
                rows = raw.execute(unit.final[0], unit.final[1]).fetchall()
        except (NeedsAnswer, sqlite3.IntegrityError) as exc:
            raw.execute("ROLLBACK TO held")
            raw.execute("RELEASE held")
            outcomes.append(NeedsAnswer(str(exc)))
            continue
        except BaseException:
            if raw.in_transaction:
                raw.execute("ROLLBACK TO held")
                raw.execute("RELEASE held")
            raise  # an I/O error, a full disk: the writer rolls the batch back
        raw.execute("RELEASE held")
        outcomes.append(rows)
    return outcomes


class HeldUnits:
    """The queue of held units for one writer, flushed by whichever caller finds none
    running (see the module docstring). Every caller waits for its own unit, so the queue
    never holds more units than there are callers (the dispatcher's workers); a flush
    takes at most ``MAX_UNITS`` of them per round trip."""

    def __init__(self, writer: Callable[[], GroupCommitWriter], busy_timeout: float) -> None:
        self._writer = writer
        self._busy_timeout = busy_timeout
        self._queue: list[_Unit] = []
        self._flushing = False
        #: set (and replaced) whenever a flush ends, for the callers waiting their turn
        self._turn = anyio.Event()

    async def run(self, statements: list[Statement], final: Statement | None) -> list[Row]:
        """Run one held unit with others; answers ``final``'s rows once committed.

        Raises ``NeedsAnswer`` when the unit must be redone as an ordinary transaction,
        ``StoreError`` when the batch could not be committed (nothing of it was saved).
        """
        unit = _Unit(statements, final)
        self._queue.append(unit)
        try:
            with anyio.fail_after(self._busy_timeout * 4):
                while not unit.done.is_set():
                    if self._flushing:  # wait for this flush to end, then look again
                        await self._turn.wait()
                        continue
                    await self._flush_oldest()
        except BaseException:
            # Cancelled (or timed out) while still queued: the unit never runs. One that
            # is in a flush already completes there, shielded, like any commit under way.
            if not unit.done.is_set() and unit in self._queue:
                self._queue.remove(unit)
            raise
        if isinstance(unit.outcome, BaseException):
            raise unit.outcome
        assert unit.outcome is not None
        return unit.outcome

    async def _flush_oldest(self) -> None:
        """Become the flusher for one batch of the oldest units, then hand the turn on:
        the caller whose unit is still queued next flushes next, so no caller flushes for
        others for longer than its own unit takes."""
        self._flushing = True
        try:
            # Shielded: the units of the batch must not be stranded half-run by this
            # caller's cancellation; bounded by the writer's busy timeout.
            with anyio.CancelScope(shield=True):
                batch, self._queue = self._queue[:MAX_UNITS], self._queue[MAX_UNITS:]
                await self._flush(batch)
        finally:
            self._flushing = False
            self._turn.set()
            self._turn = anyio.Event()

    async def _flush(self, batch: list[_Unit]) -> None:
        outcomes: list[list[Row] | BaseException] | None = None
        try:
            async with self._writer().unit() as start:
                outcomes = await start.conn.call(_run_units, start.prefix, batch, start.executed)
        except Exception as exc:  # not committed: every unit of the batch hears so
            failure = exc if isinstance(exc, StoreError) else StoreError(f"{exc}")
            for unit in batch:
                unit.outcome = failure
                unit.done.set()
            return
        assert outcomes is not None
        for unit, outcome in zip(batch, outcomes, strict=True):
            unit.outcome = outcome
            unit.done.set()
