"""`crosswalk outbox discard` as an operator runs it, against a store file."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.store import MessageStatus, OperationStatus, StepStatus, open_store
from tests.store.helpers import create_operation, enqueued_id, message
from tests.support.paths import ROOT

pytestmark = pytest.mark.anyio


def crosswalk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crosswalk", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_discard_from_the_cli_needs_a_reason_and_fails_the_operation(
    store_url: str,
) -> None:
    url = store_url  # the CLI opens the same database
    async with open_store(url) as store:
        async with store.transaction() as tx:
            await create_operation(tx, "op_1", aggregate="cust-1")
            await tx.add_steps("op_1", ["erp_order"])
            dead_id = await enqueued_id(tx, message("cust-1", "erp_order", operation_id="op_1"))
            blocked = await enqueued_id(tx, message("cust-1", "next"))
        await store.lease("w", limit=10, lease_seconds=30)
        await store.dead_letter(dead_id, "w", reason="rejected: credit block")

    refused = crosswalk("outbox", "discard", str(dead_id), "--store", url)
    assert refused.returncode == 2
    assert "--reason" in refused.stderr

    done = crosswalk(
        "outbox", "discard", str(dead_id), "--store", url, "--reason", "customer withdrew"
    )
    assert done.returncode == 0, done.stderr
    assert f"discarded dead letter {dead_id}" in done.stdout
    assert "FAILED" in done.stdout

    async with open_store(url) as store:
        assert (await store.get_message(dead_id)).status is not MessageStatus.DEAD
        operation = await store.get_operation("op_1")
        assert operation.status is OperationStatus.FAILED
        assert "customer withdrew" in (operation.error or "")
        steps = {s.name: s for s in await store.get_steps("op_1")}
        assert steps["erp_order"].status is StepStatus.FAILED
        # the customer's queue moves on
        leased = await store.lease("w", limit=10, lease_seconds=30)
        assert [m.id for m in leased] == [blocked]
        audit = await store.audit_trace(subject="operation:op_1")
        assert [(e.action, e.actor, e.detail["reason"]) for e in audit] == [
            ("outbox.discard", "operator (cli)", "customer withdrew")
        ]
