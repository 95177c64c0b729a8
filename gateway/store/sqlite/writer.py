"""The single writer connection, with group commit.

Each ``COMMIT`` in ``synchronous=FULL`` costs an fsync, and each statement a round trip
to the connection's thread. When units of work queue up for the writer, committing each one
alone would spend most of the writer's time in fsync. So units that arrive while another
is running share one SQLite transaction:

- The first unit of a batch starts it (``BEGIN IMMEDIATE``); each later unit opens a
  ``SAVEPOINT`` first (either sent along with the unit's first statement, not on its
  own), so a unit that fails rolls back to its savepoint and nothing else (the first
  unit rolls back the whole transaction: nothing else is in it yet).
- When a unit ends and other units are waiting for the writer (and the batch is below
  ``max_batch``), it hands the writer on without committing and waits for the batch's
  commit; the last unit of the batch commits for all.
- Every caller returns only after the batch holding its unit committed, and gets an
  error if that commit failed. Units still run one at a time, in lock order, so reads
  inside a unit see the units before it: the batch is equivalent to running them
  serially, which is what the single writer guaranteed anyway.

No unit waits for a batch to fill: with nobody waiting it commits at once, so a lone
writer pays no latency for this; under load the fsync is shared by up to ``max_batch``.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from gateway.store.errors import StoreBusy, StoreClosed, StoreError
from gateway.store.sqlite.connection import Connection

__all__ = ["GroupCommitWriter", "UnitStart", "begin_immediate"]

log = logging.getLogger(__name__)


async def begin_immediate(conn: Connection, path: Path, busy_timeout: float) -> None:
    """``BEGIN IMMEDIATE``: take SQLite's write lock now, waiting up to the busy timeout."""
    try:
        await conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if _is_busy(exc):
            raise StoreBusy(
                f"{path} stayed locked by another process for {busy_timeout}s: it holds a "
                "long transaction; retry, or raise busy_timeout in the store URL"
            ) from exc
        raise


class _Batch:
    """One SQLite transaction shared by consecutive units of work."""

    __slots__ = ("committed", "error", "units")

    def __init__(self) -> None:
        self.units = 0
        self.committed = anyio.Event()
        self.error: BaseException | None = None


class UnitStart:
    """What a unit of work must send first, and how much of what it sent has run."""

    __slots__ = ("conn", "executed", "prefix")

    def __init__(self, conn: Connection, prefix: str) -> None:
        self.conn = conn
        self.prefix = prefix
        #: statements of the unit's queue that ran; >= 1 once the prefix ran
        self.executed = [0]

    @property
    def started(self) -> bool:
        return self.executed[0] >= 1


def _is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


class GroupCommitWriter:
    """Owns the writer connection: ``async with writer.unit() as conn:`` is one unit."""

    def __init__(
        self,
        conn: Connection,
        path: Path,
        *,
        busy_timeout: float,
        max_batch: int = 64,
    ) -> None:
        self._conn: Connection | None = conn
        self._path = path
        self._busy_timeout = busy_timeout
        self._max_batch = max_batch
        self._lock = anyio.Lock()
        self._batch: _Batch | None = None

    async def _acquire(self) -> None:
        if not self._lock.locked():
            # Free: no wait, so no deadline needed (saves a cancel scope per unit).
            await self._lock.acquire()
            return
        try:
            with anyio.fail_after(self._busy_timeout):
                await self._lock.acquire()
        except BaseException as exc:
            # A unit may have handed its batch on because this task was queueing; leaving
            # the queue (cancelled, timed out) must not strand that batch uncommitted.
            with anyio.CancelScope(shield=True):
                if self._batch is not None and not self._lock.locked():
                    await self._lock.acquire()
                    await self._release()
            if isinstance(exc, TimeoutError):
                raise StoreBusy(
                    f"{self._path}: the writer stayed busy for {self._busy_timeout}s; a "
                    "transaction is doing slow work (I/O, waits) while holding it"
                ) from None
            raise

    async def _release(self) -> None:
        """Give up the writer; an open batch is committed unless a waiter will take it on."""
        try:
            if self._batch is not None and not self._lock.statistics().tasks_waiting:
                with anyio.CancelScope(shield=True):
                    await self._commit(self._batch)
        finally:
            self._lock.release()

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[UnitStart]:
        """One unit of work on the writer; returns once its batch committed.

        The caller sends ``start.prefix`` (``BEGIN IMMEDIATE`` or ``SAVEPOINT unit``) as
        its first statement, together with its first real one, and counts what ran in
        ``start.executed``; it must have sent the prefix before leaving the block.
        """
        await self._acquire()
        holding = True
        try:
            conn = self._conn
            if conn is None:
                raise StoreClosed(f"{self._path}: the store closed while waiting to write")
            batch = self._batch
            first = batch is None
            if batch is None:
                batch = self._batch = _Batch()
            start = UnitStart(conn, "BEGIN IMMEDIATE" if first else "SAVEPOINT unit")
            batch.units += 1
            try:
                yield start
                if not start.started:
                    raise StoreError("a unit of work ended without sending its first statement")
            except BaseException as exc:
                with anyio.CancelScope(shield=True):
                    if first:
                        if start.started and conn.in_transaction:
                            await conn.execute("ROLLBACK")
                        self._finish(batch)
                    elif start.started and not conn.in_transaction:
                        # SQLite rolled the whole transaction back by itself (I/O error,
                        # disk full): the batch's earlier units are gone too, and must
                        # hear so instead of reporting success.
                        batch.error = exc
                        self._finish(batch)
                    else:
                        if start.started:
                            await conn.execute("ROLLBACK TO unit")
                        holding = await self._end_unit(batch)
                if not start.started and _is_busy(exc):
                    raise StoreBusy(
                        f"{self._path} stayed locked by another process for "
                        f"{self._busy_timeout}s: it holds a long transaction; retry, or "
                        "raise busy_timeout in the store URL"
                    ) from exc
                raise
            with anyio.CancelScope(shield=True):
                holding = await self._end_unit(batch)
            if batch.error is not None:
                raise StoreError(
                    f"{self._path}: COMMIT failed, nothing of this transaction was saved: "
                    f"{batch.error}"
                ) from batch.error
        finally:
            if holding:
                await self._release()

    async def _end_unit(self, batch: _Batch) -> bool:
        """Hand the batch on, or commit it. Returns whether this task still holds the lock."""
        if self._batch is not batch:  # already finished (rolled back as a whole)
            return True
        waiting = self._lock.statistics().tasks_waiting
        if waiting and batch.units < self._max_batch:
            self._lock.release()
            await self._wait_for_commit(batch)
            return False
        await self._commit(batch)
        return True

    async def _wait_for_commit(self, batch: _Batch) -> None:
        """Wait for the outcome of the batch this unit handed on (a later unit commits it;
        ``_acquire`` and ``_release`` make sure one does, even if the task we handed over
        to goes away).

        No deadline ends this wait: once handed on, the unit's writes are part of that
        batch and commit or roll back with it, so its caller must hear which. (Giving up
        early answered StoreBusy for writes that then committed, and callers retried
        them.) The caller's cancel scope is shielded around this wait for the same
        reason. A batch that stays open this long is logged, each ``3 x busy_timeout``.
        """
        waited = 0.0
        patience = self._busy_timeout * 3
        while True:
            with anyio.move_on_after(patience):
                await batch.committed.wait()
                return
            waited += patience
            log.warning(
                "%s: a transaction has waited %.1f s for its shared commit: a later "
                "transaction in its batch is doing slow work while holding the writer",
                self._path,
                waited,
            )

    async def _commit(self, batch: _Batch) -> None:
        conn = self._conn
        try:
            if conn is None:
                raise StoreError(f"{self._path}: the store closed before COMMIT")
            await conn.execute("COMMIT")
        except BaseException as exc:
            batch.error = exc
            if conn is not None and conn.in_transaction:
                await conn.execute("ROLLBACK")
        finally:
            self._finish(batch)

    def _finish(self, batch: _Batch) -> None:
        if self._batch is batch:
            self._batch = None
        batch.committed.set()

    async def close(self) -> Connection | None:
        """Wait (bounded) for running units, commit an open batch, and give up the
        connection for the caller to close."""
        locked = False
        with anyio.CancelScope(shield=True), anyio.move_on_after(self._busy_timeout):
            await self._lock.acquire()
            locked = True
            if self._batch is not None:
                await self._commit(self._batch)
        conn, self._conn = self._conn, None
        if locked:
            self._lock.release()  # units still queued wake up and see the store closed
        return conn
