"""The PostgreSQL store backend (asyncpg): several gateway replicas share one database.

Connections come from an asyncpg pool (``pool`` in the URL's query: its largest size,
default 20). A unit of work is one database transaction (READ COMMITTED) on one pooled
connection; what several replicas need on top (the lease with ``SKIP LOCKED``, fenced
lease tokens, per-aggregate order, shared idempotency claims) is in ``transaction``. A
read view is a REPEATABLE READ, read-only transaction; a one-call read is one statement.

Operation change notifications and the outbox wake-up reach this process's watchers
only: another replica's changes are seen by reading (the dispatcher polls).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import anyio
import asyncpg

from gateway.store.errors import MigrationError, StoreBusy, StoreClosed, StoreError
from gateway.store.interface import Reader, Store, Transaction
from gateway.store.postgres.migrations import LATEST_VERSION, MIGRATION_LOCK, MIGRATIONS
from gateway.store.postgres.reads import PostgresReader
from gateway.store.postgres.transaction import PostgresTransaction
from gateway.store.records import utcnow
from gateway.store.sql.rows import to_micros

__all__ = ["PostgresStore"]


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class PostgresStore(Store):
    """A store in one PostgreSQL database. Build with ``open_store("postgresql://...")``.

    ``pool``: the most connections this process opens. ``timeout``: seconds to wait for a
    connection from the pool, and for ``close`` to wait for connections in use.
    """

    def __init__(
        self,
        dsn: str,
        *,
        pool: int = 20,
        timeout: float = 10.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(clock=clock)
        if pool < 1:
            raise ValueError(f"pool must be at least 1, got {pool}")
        self.dsn = dsn
        self.timeout = timeout
        self._pool_size = pool
        self._pool: asyncpg.Pool | None = None
        self._state = _State.UNOPENED

    def __repr__(self) -> str:
        where = self.dsn.rsplit("@", 1)[-1]  # no credentials
        return f"PostgresStore({where!r}, state={self._state.value})"

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        if self._state is not _State.UNOPENED:
            raise StoreClosed(
                f"Cannot open {self!r}: a store is opened once; build a new one with open_store."
            )
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=self._pool_size,
                timeout=self.timeout,
                command_timeout=None,
            )
            async with self._pool.acquire(timeout=self.timeout) as conn:
                await self._migrate(conn)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._close_pool()
            self._state = _State.CLOSED
            if isinstance(exc, OSError | asyncpg.PostgresError):
                raise StoreError(f"{self!r}: cannot open the database: {exc}") from exc
            raise
        self._state = _State.OPEN

    async def _migrate(self, conn: asyncpg.Connection) -> None:
        """Apply pending migrations in one transaction, under an advisory lock (replicas
        starting together take turns; the later ones find the schema current)."""
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
            )
            current = int(
                await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
            )
            if current > LATEST_VERSION:
                raise MigrationError(
                    f"{self!r} is at schema version {current}, newer than this code's "
                    f"{LATEST_VERSION}: run a newer crosswalk or point it at another database"
                )
            for version in range(current + 1, LATEST_VERSION + 1):
                try:
                    await conn.execute(MIGRATIONS[version])
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"{self!r}: migration {version} failed: {exc}") from exc
                await conn.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
                    version,
                    to_micros(self.clock()),
                )

    async def close(self) -> None:
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        self.notifier.close()
        with anyio.CancelScope(shield=True):
            await self._close_pool()

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        with anyio.move_on_after(self.timeout) as scope:
            await pool.close()  # waits for connections in use to be released
        if scope.cancelled_caught:
            pool.terminate()

    def _require_pool(self) -> asyncpg.Pool:
        if self._state is not _State.OPEN or self._pool is None:
            raise StoreClosed(
                f"{self!r} is not open: use it inside `async with open_store(url) as store:`"
            )
        return self._pool

    # ------------------------------------------------------------ units of work

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection. Taking and giving it back are shielded (bounded by the
        timeout): a connection handed back half-opened, or one cancelled while it
        connects, would be reset or lost instead of reused."""
        pool = self._require_pool()
        with anyio.CancelScope(shield=True):
            try:
                conn = await pool.acquire(timeout=self.timeout)
            except TimeoutError:
                raise StoreBusy(
                    f"{self!r}: no connection came free in the pool within {self.timeout}s; "
                    "raise ?pool= in the store URL or ?timeout="
                ) from None
        try:
            yield conn
        finally:
            with anyio.CancelScope(shield=True):
                await pool.release(conn, timeout=self.timeout)

    @asynccontextmanager
    async def _in_transaction(
        self, conn: asyncpg.Connection, **options: Any
    ) -> AsyncIterator[None]:
        """One database transaction: committed on normal exit, else rolled back. Its
        BEGIN, COMMIT and ROLLBACK are shielded, so a cancelled caller still leaves the
        connection outside any transaction."""
        work = conn.transaction(**options)
        with anyio.CancelScope(shield=True):
            await work.start()
        try:
            yield
        except BaseException:
            with anyio.CancelScope(shield=True):
                await work.rollback()
            raise
        with anyio.CancelScope(shield=True):
            await work.commit()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._connection() as conn, self._in_transaction(conn):
            tx = PostgresTransaction(conn, self.clock)
            yield tx
            await tx.flush()  # inside the transaction: a failing write rolls it back
        self._committed(tx.changed_operations.values(), tx.outbox_touched)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[Reader]:
        async with (
            self._connection() as conn,
            self._in_transaction(conn, isolation="repeatable_read", readonly=True),
        ):
            yield PostgresReader(conn, self.clock)

    @asynccontextmanager
    async def _shortcut_reader(self) -> AsyncIterator[Reader]:
        # one statement sees a consistent state by itself: no transaction around it
        async with self._connection() as conn:
            yield PostgresReader(conn, self.clock)

    async def schema_version(self) -> int:
        async with self._connection() as conn:
            return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))
