"""Durability: a writer killed with SIGKILL loses no committed transaction."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from gateway.store import IdempotencyState, MessageStatus, Store, open_store

pytestmark = pytest.mark.anyio

CHILD = Path(__file__).with_name("durability_child.py")
ROOT = Path(__file__).resolve().parents[2]


async def _run_and_kill(url: str, run: str, writers: int, commits_before_kill: int) -> set[str]:
    """Start the child, let it report ``commits_before_kill`` commits, SIGKILL it while it
    keeps writing, and return every operation id it reported as committed."""
    committed: set[str] = set()
    async with await anyio.open_process(
        [sys.executable, str(CHILD), url, run, str(writers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    ) as child:
        assert child.stdout is not None
        buffer = b""
        killed = False
        with anyio.fail_after(60):
            # Keep reading after the kill: lines written before it landed count too.
            async for chunk in child.stdout:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                committed.update(line.decode() for line in lines)
                if not killed and len(committed) >= commits_before_kill:
                    child.send_signal(signal.SIGKILL)
                    killed = True
            await child.wait()
        if child.returncode != -signal.SIGKILL:
            assert child.stderr is not None
            error = (await child.stderr.receive()).decode(errors="replace")
            pytest.fail(f"child ended with {child.returncode} before the kill: {error}")
    return committed


async def _check_committed(store: Store, committed: set[str]) -> None:
    for op_id in committed:
        op = await store.get_operation(op_id)
        assert op is not None, f"committed operation {op_id} was lost"
        assert [s.name for s in await store.get_steps(op_id)] == ["erp", "billing"]
        assert [m.step for m in await store.list_messages(operation_id=op_id)] == ["erp", "billing"]
        record = await store.get_idempotency("child", op_id)
        assert record is not None
        assert record.state is IdempotencyState.COMPLETED


def _assert_intact(path: Path) -> None:
    conn = sqlite3.connect(path)  # recovery from the WAL happens on this first read
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        # Every transaction is whole: an operation never lacks its messages or its key.
        orphans = conn.execute(
            "SELECT count(*) FROM operations o WHERE "
            "(SELECT count(*) FROM outbox m WHERE m.operation_id = o.id) != 2 OR "
            "(SELECT count(*) FROM saga_steps s WHERE s.operation_id = o.id) != 2 OR "
            "NOT EXISTS (SELECT 1 FROM idempotency i WHERE i.operation_id = o.id "
            "AND i.state = 'completed')"
        ).fetchone()[0]
        assert orphans == 0
    finally:
        conn.close()


@pytest.mark.parametrize("writers", [1, 8])
async def test_sigkilled_writer_loses_no_committed_row(
    store_url: str, tmp_path: Path, writers: int, backend: str
) -> None:
    """On every backend a writer killed mid-stream loses nothing it committed; on SQLite
    (a file this process writes) the file is also checked whole, as recovered."""

    def assert_intact() -> None:
        if backend == "sqlite":
            _assert_intact(tmp_path / "store.db")

    first = await _run_and_kill(store_url, "a", writers, commits_before_kill=150)
    assert len(first) >= 150
    assert_intact()
    async with open_store(store_url) as store:
        await _check_committed(store, first)
        pending = (await store.outbox_status()).total(MessageStatus.PENDING)
        assert pending >= 2 * len(first)
    # The recovered file takes a second writer, killed the same way.
    second = await _run_and_kill(store_url, "b", writers, commits_before_kill=50)
    assert_intact()
    async with open_store(store_url) as store:
        await _check_committed(store, first | second)
