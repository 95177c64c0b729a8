"""Durability: a writer killed with SIGKILL loses no committed transaction."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from gateway.store import MessageStatus, Store, open_store

pytestmark = pytest.mark.anyio

CHILD = Path(__file__).with_name("durability_child.py")
ROOT = Path(__file__).resolve().parents[2]


async def _run_and_kill(url: str, run: str, commits_before_kill: int) -> int:
    """Start the child, let it commit at least ``commits_before_kill`` times, SIGKILL it
    while it keeps writing, and return the highest commit it reported."""
    last = 0
    async with await anyio.open_process(
        [sys.executable, str(CHILD), url, run],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    ) as child:
        assert child.stdout is not None
        buffer = b""
        with anyio.fail_after(60):
            async for chunk in child.stdout:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                if lines:
                    last = int(lines[-1])
                if last >= commits_before_kill:
                    child.send_signal(signal.SIGKILL)
                    break
            # Lines written before the kill landed still count as committed.
            async for chunk in child.stdout:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                if lines:
                    last = int(lines[-1])
            await child.wait()
        assert child.returncode == -signal.SIGKILL, await _stderr(child)
    return last


async def _stderr(child: anyio.abc.Process) -> str:
    assert child.stderr is not None
    return (await child.stderr.receive()).decode(errors="replace")


async def _check_all_committed(store: Store, run: str, last: int) -> None:
    for n in range(1, last + 1):
        op = await store.get_operation(f"{run}-op-{n}")
        assert op is not None, f"committed operation {run}-op-{n} was lost"
        messages = await store.messages_for(f"{run}-op-{n}")
        assert [m.step for m in messages] == ["erp", "billing"]
        assert await store.get_idempotency("child", f"{run}-key-{n}") is not None


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sigkilled_writer_loses_no_committed_row(store_url: str, tmp_path: Path) -> None:
    first = await _run_and_kill(store_url, "a", commits_before_kill=150)
    assert first >= 150
    _assert_intact(tmp_path / "store.db")
    async with open_store(store_url) as store:
        await _check_all_committed(store, "a", first)
        # A transaction cut short by the kill left nothing half-written behind.
        pending = (await store.outbox_status()).total(MessageStatus.PENDING)
        assert pending % 2 == 0
        assert pending >= 2 * first
    # The recovered file takes a second writer, killed the same way.
    second = await _run_and_kill(store_url, "b", commits_before_kill=50)
    _assert_intact(tmp_path / "store.db")
    async with open_store(store_url) as store:
        await _check_all_committed(store, "a", first)
        await _check_all_committed(store, "b", second)


def _assert_intact(path: Path) -> None:
    conn = sqlite3.connect(path)  # recovery from the WAL happens on this first read
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()
