"""The SQLite store backend: the embedded default.

Durability. The database runs in WAL mode with ``synchronous=FULL``: ``COMMIT`` returns
only after the write-ahead log has been fsynced. So:

- a killed process (``kill -9``, a crash, an OOM kill) loses nothing that was committed,
  and an uncommitted transaction leaves no trace; the next open recovers from the WAL;
- on power loss or an OS crash, every transaction whose ``COMMIT`` returned is kept,
  provided the disk honours fsync (no volatile write cache that lies about flushing;
  some consumer SSDs and virtual disks do lie, and then the last transactions can be
  lost, though the file stays consistent). ``synchronous=NORMAL`` would be faster and
  still safe against a killed process, but could lose the last commits on power loss.

Concurrency. One writer connection guarded by an anyio lock: SQLite serialises writers
anyway, and one connection keeps the lock queue in this process fair and cheap. Every
SQLite transaction starts with ``BEGIN IMMEDIATE``, so it holds SQLite's write lock for its
whole length and read-then-write logic cannot interleave with another process on the same
file (that process waits up to ``busy_timeout``). Units of work that queue up for the
writer share one commit (group commit, ``gateway.store.sqlite.writer``), each in its own
savepoint, so the fsync cost is paid once per batch rather than once per unit. Reads use
a small pool of read-only connections which, in WAL mode, never block and are never
blocked by the writer.
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import anyio

from gateway.store.errors import MigrationError, StoreClosed
from gateway.store.interface import Reader, Store, Transaction
from gateway.store.records import OutboxMessage, utcnow
from gateway.store.sql.rows import to_micros
from gateway.store.sqlite.connection import Connection, connect
from gateway.store.sqlite.held import HeldTransaction, HeldUnits, NeedsAnswer
from gateway.store.sqlite.lease import lease_statement, leased_messages
from gateway.store.sqlite.migrations import LATEST_VERSION, MIGRATIONS, statements
from gateway.store.sqlite.reads import SQLiteReader
from gateway.store.sqlite.transaction import SQLiteTransaction
from gateway.store.sqlite.writer import GroupCommitWriter, begin_immediate

__all__ = ["SQLiteStore"]

_T = TypeVar("_T")


class _State(enum.Enum):
    UNOPENED = "unopened"  # built, no connection yet
    OPEN = "open"  # connections up, schema current
    CLOSED = "closed"  # connections closed; cannot be reopened


class SQLiteStore(Store):
    """A store in one SQLite file. Build with ``open_store("sqlite:///path.db")``.

    ``busy_timeout``: seconds to wait for another process's write lock (and for this
    process's own writer lock) before ``StoreBusy``. ``readers``: read connections.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 10.0,
        readers: int = 2,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(clock=clock)
        if str(path) in ("", ":memory:"):
            raise ValueError(
                "SQLite store needs a file path (readers and writer share it): "
                "use sqlite:///path/to/file.db, e.g. a file in a temporary directory"
            )
        if readers < 1:
            raise ValueError(f"readers must be at least 1, got {readers}")
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._state = _State.UNOPENED
        self._writer: GroupCommitWriter | None = None
        self._reader_count = readers
        self._free_readers: list[Connection] = []
        self._reader_slots = anyio.Semaphore(readers)
        self._held = HeldUnits(self._the_writer, busy_timeout)

    def _the_writer(self) -> GroupCommitWriter:
        self._require_open()
        assert self._writer is not None
        return self._writer

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, state={self._state.value})"

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        if self._state is not _State.UNOPENED:
            raise StoreClosed(
                f"Cannot open {self!r}: a store is opened once; build a new one with open_store."
            )
        await anyio.Path(self.path.parent).mkdir(parents=True, exist_ok=True)
        try:
            conn = await self._connect()
            self._writer = GroupCommitWriter(conn, self.path, busy_timeout=self.busy_timeout)
            mode = await conn.fetchall("PRAGMA journal_mode = WAL")
            if next(iter(mode))[0] != "wal":
                raise MigrationError(f"{self.path}: could not switch the journal to WAL mode")
            await self._migrate(conn)
            for _ in range(self._reader_count):
                reader = await self._connect()
                await reader.execute("PRAGMA query_only = ON")
                self._free_readers.append(reader)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._close_connections()
            self._state = _State.CLOSED
            raise
        self._state = _State.OPEN

    async def close(self) -> None:
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        self.notifier.close()
        with anyio.CancelScope(shield=True):
            # Let running reads finish (bounded); the writer commits what it holds.
            with anyio.move_on_after(self.busy_timeout):
                for _ in range(self._reader_count):
                    await self._reader_slots.acquire()
            await self._close_connections()

    async def _close_connections(self) -> None:
        connections = list(self._free_readers)
        self._free_readers = []
        if self._writer is not None:
            writer_conn = await self._writer.close()
            if writer_conn is not None:
                connections.append(writer_conn)
        for conn in connections:
            await conn.close()

    async def _connect(self) -> Connection:
        conn = await connect(self.path, busy_timeout=self.busy_timeout)
        try:
            for pragma in (
                "PRAGMA synchronous = FULL",
                "PRAGMA foreign_keys = ON",
                f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}",
            ):
                await conn.execute(pragma)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await conn.close()
            raise
        return conn

    async def _migrate(self, conn: Connection) -> None:
        """Apply pending migrations in one transaction (other processes wait on the lock)."""
        await begin_immediate(conn, self.path, self.busy_timeout)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
            )
            rows = await conn.fetchall("SELECT coalesce(max(version), 0) FROM schema_version")
            current = int(next(iter(rows))[0])
            if current > LATEST_VERSION:
                raise MigrationError(
                    f"{self.path} is at schema version {current}, newer than this code's "
                    f"{LATEST_VERSION}: run a newer crosswalk or point it at another file"
                )
            for version in range(current + 1, LATEST_VERSION + 1):
                try:
                    for statement in statements(MIGRATIONS[version]):
                        await conn.execute(statement)
                except sqlite3.Error as exc:
                    raise MigrationError(f"{self.path}: migration {version} failed: {exc}") from exc
                await conn.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                    (version, to_micros(self.clock())),
                )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")

    def _require_open(self) -> None:
        if self._state is not _State.OPEN:
            raise StoreClosed(
                f"{self!r} is not open: use it inside `async with open_store(url) as store:`"
            )

    # ------------------------------------------------------------ units of work

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        self._require_open()
        assert self._writer is not None
        async with self._writer.unit() as start:
            tx = SQLiteTransaction(start.conn, self.clock, start=start)
            yield tx
            await tx.flush()  # inside the unit: a failing queued write rolls it back
        self._committed(tx.changed_operations.values(), tx.outbox_touched)

    async def run_unit(
        self,
        work: Callable[[Transaction], Awaitable[_T]],
        *,
        owner: str | None = None,
        lease_limit: int = 0,
        lease_seconds: float = 30.0,
    ) -> tuple[_T, list[OutboxMessage]]:
        # Held back and batched with other such units (``held``) when ``work``
        # needs no answer; otherwise, or when its writes missed (a lease lost, an
        # operation changed since), an ordinary transaction gives the exact outcome.
        self._require_open()
        tx = HeldTransaction(self.clock)
        try:
            value = await work(tx)
            # the lease's "now" after the work's: a next step it enqueued is due already
            final = None
            if owner is not None and lease_limit > 0:
                final = lease_statement(owner, lease_limit, lease_seconds, self.clock())
            rows = await self._held.run(tx.statements(), final)
        except NeedsAnswer:
            return await super().run_unit(
                work, owner=owner, lease_limit=lease_limit, lease_seconds=lease_seconds
            )
        self._committed(tx.changed_operations.values(), tx.outbox_touched)
        return value, leased_messages(rows)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[Reader]:
        async with self._read_connection() as conn:
            # One read transaction: every query in the block sees the same snapshot.
            # BEGIN is shielded: once queued it runs on the connection's thread even if
            # this task is cancelled, and the ROLLBACK below must then always follow it,
            # or the pooled connection is handed on inside a transaction. A shield does
            # not stop a bare asyncio cancel, so a snapshot left open that way is closed
            # here, by the connection's next reader (statements run in order on its
            # thread, so by the time BEGIN fails the stray one has run).
            with anyio.CancelScope(shield=True):
                try:
                    await conn.execute("BEGIN")
                except sqlite3.OperationalError as exc:
                    if "within a transaction" not in str(exc):
                        raise
                    await conn.execute("ROLLBACK")
                    await conn.execute("BEGIN")
            try:
                yield SQLiteReader(conn, self.clock)
            finally:
                with anyio.CancelScope(shield=True):
                    await conn.execute("ROLLBACK")

    @asynccontextmanager
    async def _shortcut_reader(self) -> AsyncIterator[Reader]:
        # A shortcut is one read: each SQL statement sees a consistent state by itself, so
        # the BEGIN/ROLLBACK round trips of a snapshot would only add latency.
        async with self._read_connection() as conn:
            yield SQLiteReader(conn, self.clock)

    @asynccontextmanager
    async def _read_connection(self) -> AsyncIterator[Connection]:
        self._require_open()
        async with self._reader_slots:
            conn = self._free_readers.pop()
            try:
                yield conn
            finally:
                self._free_readers.append(conn)

    async def schema_version(self) -> int:
        async with self.reader() as r:
            assert isinstance(r, SQLiteReader)
            row = await r._one("SELECT coalesce(max(version), 0) FROM schema_version")
            return int(row[0]) if row else 0
