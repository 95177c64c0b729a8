"""Opening, migrating, closing, transactions and URLs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import anyio.lowlevel
import asyncpg
import pytest

from canonical import System
from gateway.store import (
    ConstraintViolation,
    MessageStatus,
    MigrationError,
    NewAudit,
    Store,
    StoreClosed,
    UnsupportedStoreURL,
    open_store,
)
from gateway.store.sqlite.migrations import LATEST_VERSION, MIGRATIONS, statements

from .conftest import FakeClock
from .helpers import create_operation, message

pytestmark = pytest.mark.anyio


async def test_fresh_store_is_at_latest_schema(store: Store, latest_version: int) -> None:
    assert await store.schema_version() == latest_version


async def test_reopening_keeps_data_and_does_not_migrate_again(
    store_url: str, clock: FakeClock, latest_version: int
) -> None:
    async with open_store(store_url, clock=clock) as first, first.transaction() as tx:
        await create_operation(tx, "op-1")
    for _ in range(3):
        async with open_store(store_url, clock=clock) as again:
            assert await again.schema_version() == latest_version
            op = await again.get_operation("op-1")
            assert op is not None
            assert op.input == {"name": "Acme GmbH", "country": "DE"}


async def test_rolled_back_transaction_leaves_nothing(store: Store) -> None:
    class Boom(Exception):
        pass

    async def write_everything_then_fail() -> None:
        async with store.transaction() as tx:
            await create_operation(tx, "op-1")
            await tx.enqueue(message("cust-1", "erp", operation_id="op-1"))
            await tx.begin_idempotent("widget", "key-1", "fp")
            await tx.record_inbox("billing", "evt_1", {"type": "invoice.paid"})
            await tx.append_audit(
                NewAudit(actor="widget", action="onboard", subject="operation:op-1")
            )
            await tx.link({System.ERP: "1000042"})
            raise Boom

    with pytest.raises(Boom):
        await write_everything_then_fail()

    assert await store.get_operation("op-1") is None
    assert (await store.outbox_status()).counts == {}
    assert await store.get_idempotency("widget", "key-1") is None
    assert await store.get_inbox("billing", "evt_1") is None
    assert await store.audit_trace(subject="operation:op-1") == []
    assert await store.resolve(System.ERP, "1000042") is None
    # The store is still usable after a rollback.
    async with store.transaction() as tx:
        await create_operation(tx, "op-1")
    assert await store.get_operation("op-1") is not None


async def test_cancelled_transaction_rolls_back(store: Store) -> None:
    started = anyio.Event()
    async with anyio.create_task_group() as tg:

        async def write_then_hang() -> None:
            async with store.transaction() as tx:
                await create_operation(tx, "op-1")
                started.set()
                await anyio.sleep_forever()

        tg.start_soon(write_then_hang)
        with anyio.fail_after(5):
            await started.wait()
        tg.cancel_scope.cancel()
    assert await store.get_operation("op-1") is None
    async with store.transaction() as tx:  # the writer is free again
        await create_operation(tx, "op-2")


async def test_a_reader_cancelled_as_it_opens_leaves_its_connection_clean(
    store: Store,
) -> None:
    # Cancelled while its snapshot is being opened, a reader must still close it: the
    # next reader on the same pooled connection would otherwise fail to begin its own.
    # the deadlines sweep across the reader's opening, so some land while BEGIN runs
    for step in range(300):
        with anyio.move_on_after(step * 2e-6):
            async with store.reader() as reader:
                await reader.get_operation("op_nope")
    for _ in range(5):
        async with store.reader() as reader:
            assert await reader.get_operation("op_nope") is None


async def test_reads_do_not_see_uncommitted_writes(store: Store) -> None:
    async with store.transaction() as tx:
        await create_operation(tx, "op-1")
        assert await tx.get_operation("op-1") is not None  # its own writes: yes
        assert await store.get_operation("op-1") is None  # another reader: not yet
    assert await store.get_operation("op-1") is not None


async def test_closed_store_refuses_use(store_url: str) -> None:
    store = open_store(store_url)
    with pytest.raises(StoreClosed):
        await store.get_operation("x")
    async with store:
        pass
    with pytest.raises(StoreClosed):
        await store.get_operation("x")
    with pytest.raises(StoreClosed):
        await store.open()


async def test_unknown_url_schemes_are_refused() -> None:
    with pytest.raises(UnsupportedStoreURL, match="unknown scheme"):
        open_store("mysql://localhost/db")
    with pytest.raises(UnsupportedStoreURL, match="three slashes"):
        open_store("sqlite://relative.db")
    with pytest.raises(UnsupportedStoreURL, match="unknown option"):
        open_store("sqlite:///x.db?colour=blue")
    with pytest.raises(ValueError, match="file path"):
        open_store("sqlite:///:memory:")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sqlite_runs_wal_with_full_sync(store_url: str, tmp_path: Path) -> None:
    """SQLite only: journal mode and sync level are pragmas of its file."""
    async with open_store(store_url):
        pass
    conn = sqlite3.connect(tmp_path / "store.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert [v for (v,) in versions] == sorted(MIGRATIONS)
    finally:
        conn.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sqlite_refuses_a_newer_schema(store_url: str, tmp_path: Path) -> None:
    """SQLite only: the test writes the version row through the file itself (PostgreSQL's
    twin is test_postgres_refuses_a_newer_schema)."""
    async with open_store(store_url):
        pass
    conn = sqlite3.connect(tmp_path / "store.db")
    with conn:
        conn.execute("INSERT INTO schema_version VALUES (?, 0)", (LATEST_VERSION + 1,))
    conn.close()
    with pytest.raises(MigrationError, match="newer than this code"):
        async with open_store(store_url):
            pass


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_postgres_refuses_a_newer_schema(store_url: str, latest_version: int) -> None:
    """PostgreSQL only: the version row is written through the server (SQLite's twin
    writes it through the file)."""
    async with open_store(store_url):
        pass
    conn = await asyncpg.connect(store_url)
    try:
        await conn.execute("INSERT INTO schema_version VALUES ($1, 0)", latest_version + 1)
    finally:
        await conn.close()
    with pytest.raises(MigrationError, match="newer"):
        async with open_store(store_url):
            pass


def test_migration_scripts_split_into_statements() -> None:
    for script in MIGRATIONS.values():
        parts = statements(script)
        assert parts
        assert all(sqlite3.complete_statement(p) for p in parts)
    with pytest.raises(ValueError, match="inside a statement"):
        statements("CREATE TABLE t (a INTEGER")


async def test_concurrent_units_commit_or_fail_each_on_their_own(store: Store) -> None:
    """Many units at once (the SQLite backend groups them into shared commits): a failing
    unit takes back only its own writes, and every other unit is durable when it returns."""

    class Refused(Exception):
        pass

    go = anyio.Event()
    returned: list[int] = []

    async def unit(i: int) -> None:
        await go.wait()
        try:
            async with store.transaction() as tx:
                await create_operation(tx, f"op-{i}", aggregate=f"cust-{i}")
                await tx.enqueue(message(f"cust-{i}", "erp", operation_id=f"op-{i}"))
                await anyio.lowlevel.checkpoint()  # let other units queue up meanwhile
                if i % 3 == 0:
                    raise Refused(i)
        except Refused:
            return
        # Returned from the block: the commit holding this unit is done.
        assert await store.get_operation(f"op-{i}") is not None
        returned.append(i)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for i in range(60):
                tg.start_soon(unit, i)
            await anyio.wait_all_tasks_blocked()
            go.set()
    assert sorted(returned) == [i for i in range(60) if i % 3]
    page = await store.list_operations(limit=100)
    assert sorted(op.id for op in page.items) == sorted(f"op-{i}" for i in returned)
    assert (await store.outbox_status()).total(MessageStatus.PENDING) == len(returned)


async def test_a_unit_cancelled_while_queued_does_not_strand_the_others(store: Store) -> None:
    go = anyio.Event()
    done: list[int] = []

    async def unit(i: int) -> None:
        await go.wait()
        async with store.transaction() as tx:
            await create_operation(tx, f"op-{i}", aggregate=f"cust-{i}")
            await anyio.lowlevel.checkpoint()
        done.append(i)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            victims: list[anyio.CancelScope] = []

            async def cancellable(i: int) -> None:
                with anyio.CancelScope() as scope:
                    victims.append(scope)
                    await unit(i)

            for i in range(20):
                tg.start_soon(cancellable if i % 2 else unit, i)
            await anyio.wait_all_tasks_blocked()
            go.set()
            await anyio.lowlevel.checkpoint()
            for scope in victims:
                scope.cancel()
    for i in done:
        assert await store.get_operation(f"op-{i}") is not None
    assert all(i in done for i in range(0, 20, 2))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sqlite_upgrades_a_version_1_file_with_its_backlog(
    store_url: str, tmp_path: Path
) -> None:
    """SQLite only: files of schema version 1 exist in the field; the PostgreSQL backend
    started at its own version 1, so it has no such history to upgrade."""
    conn = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER)")
    for statement in statements(MIGRATIONS[1]):
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (1, 0)")
    rows = [  # (aggregate, status): a1 done, a2 dead (blocks a3), b1 pending
        ("a", "done"),
        ("a", "dead"),
        ("a", "pending"),
        ("b", "pending"),
    ]
    for agg, status in rows:
        conn.execute(
            "INSERT INTO outbox (step, aggregate_key, system, type, payload, idempotency_key, "
            "status, available_at, created_at, updated_at) "
            "VALUES ('s', ?, 'erp', 'T', '{}', 'k', ?, 0, 0, 0)",
            (agg, status),
        )
    conn.close()

    async with open_store(store_url) as store:
        assert await store.schema_version() == LATEST_VERSION
        assert [m.id for m in await store.lease("w", limit=10, lease_seconds=30)] == [4]
        assert await store.replay(2)
        assert [m.id for m in await store.lease("w", limit=10, lease_seconds=30)] == [2]


async def test_a_failing_queued_write_fails_its_unit_before_commit(store: Store) -> None:
    """A backend may send writes whose answer it knows later (with the next statement or
    at the end of the unit); their errors still abort the unit, never a commit."""
    async with store.transaction() as tx:
        await create_operation(tx, "op-1")

    async def reuse_id_and_end() -> None:
        async with store.transaction() as tx:
            await tx.enqueue(message("cust-2", "erp"))
            await create_operation(tx, "op-1")  # duplicate id: a constraint error

    async def reuse_id_then_read() -> None:
        async with store.transaction() as tx:
            await create_operation(tx, "op-1")
            await tx.get_operation("op-1")

    for attempt in (reuse_id_and_end, reuse_id_then_read):
        with pytest.raises(ConstraintViolation, match="UNIQUE|unique"):
            await attempt()
    assert (await store.outbox_status()).counts == {}
    async with store.transaction() as tx:  # the writer is healthy afterwards
        await create_operation(tx, "op-2")
        await tx.add_steps("op-2", ["a", "b"])
        assert [s.name for s in await tx.get_steps("op-2")] == ["a", "b"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sqlite_batch_lost_to_an_automatic_rollback_is_reported(store: Store) -> None:
    """SQLite only (its group commit): some SQLite errors (disk full, I/O) roll back the
    whole transaction by themselves. A unit that shared that transaction must then fail,
    not report success. PostgreSQL runs each unit in its own transaction."""
    from gateway.store import StoreError

    first_written = anyio.Event()
    outcomes: dict[str, str] = {}

    async def first() -> None:
        try:
            async with store.transaction() as tx:
                await create_operation(tx, "op-1")
                await tx.get_operation("op-1")  # sends it
                first_written.set()
                await anyio.wait_all_tasks_blocked()  # the second unit queues meanwhile
            outcomes["first"] = "ok"
        except StoreError:
            outcomes["first"] = "failed"

    async def second() -> None:
        await first_written.wait()
        try:
            async with store.transaction() as tx:
                await create_operation(tx, "op-2")
                await tx.get_operation("op-2")
                # Stand-in for an error after which SQLite rolled everything back.
                await tx._conn.execute("ROLLBACK")  # type: ignore[attr-defined]
                raise OSError("disk full")
        except OSError:
            outcomes["second"] = "failed"

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            tg.start_soon(second)
    assert outcomes == {"first": "failed", "second": "failed"}
    assert await store.get_operation("op-1") is None
    async with store.transaction() as tx:  # and the writer carries on
        await create_operation(tx, "op-3")
    assert await store.get_operation("op-3") is not None


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_unit_that_handed_on_its_batch_hears_the_real_outcome(
    tmp_path: Path, backend: str
) -> None:
    """SQLite only: its group commit shares one transaction among units."""
    # SQLite's group commit: unit X hands its open batch to unit Y, which then holds the
    # writer past X's patience (3 x busy_timeout). X must wait for the shared COMMIT and
    # hear success, not StoreBusy for writes that do commit; and a caller cancelled
    # meanwhile must not leave its writes in doubt either.
    url = f"sqlite:///{tmp_path / 'group.db'}?busy_timeout=0.02"
    async with open_store(url) as store:
        writer = store._writer  # type: ignore[attr-defined]
        y_holds_writer = anyio.Event()
        outcomes: dict[str, str] = {}

        async def unit_x(name: str) -> None:
            with anyio.CancelScope() as scope:
                try:
                    async with store.transaction() as tx:
                        await tx.append_audit(NewAudit(actor=name, action="write", subject="s"))
                        # hand on only once Y queues for the writer
                        # the lock offers no "someone queued" event: poll it each tick
                        while not writer._lock.statistics().tasks_waiting:
                            await anyio.lowlevel.checkpoint()
                    outcomes[name] = "committed"
                except Exception as exc:
                    outcomes[name] = f"error: {exc}"
            if scope.cancelled_caught:
                outcomes[name] = "cancelled"

        async def unit_y() -> None:
            async with store.transaction() as tx:
                await tx.append_audit(NewAudit(actor="y", action="write", subject="s"))
                y_holds_writer.set()
                # slow work while holding the writer: well past X's patience
                await anyio.sleep(0.2)

        for name, cancel in (("x1", False), ("x2", True)):
            y_holds_writer = anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(unit_x, name)
                tg.start_soon(unit_y)
                if cancel:
                    await y_holds_writer.wait()
                    tg.cancel_scope.cancel()
            async with store.reader() as reader:
                actors = [e.actor for e in await reader.audit_trace(subject="s", limit=100)]
            if not cancel:
                assert outcomes[name] == "committed", outcomes
                assert name in actors
            else:
                # cancelled, and its writes are there or not as one: never "failed" with
                # the rows committed
                assert not outcomes.get(name, "").startswith("error"), outcomes
