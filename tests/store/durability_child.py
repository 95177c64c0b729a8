"""Child process for the durability test: commit forever, report each commit on stdout.

Run as ``python durability_child.py <store url> <run name> <writers>``. Each of
``writers`` concurrent tasks commits transactions (one operation, its steps, two outbox
messages, an idempotency claim completed in the same unit); concurrent units share
commits (group commit). A line ``<operation id>`` is printed only after the transaction
that wrote it committed, so the parent knows every printed id must survive a SIGKILL.
"""

from __future__ import annotations

import sys
from itertools import count

import anyio

from gateway.store import NewMessage, Store, open_store


async def writer(store: Store, run: str, worker: int) -> None:
    for n in count(1):
        op_id = f"{run}-{worker}-{n}"
        aggregate = f"cust-{n % 7}"
        async with store.transaction() as tx:
            await tx.begin_idempotent("child", op_id, "fp", operation_id=op_id)
            await tx.create_operation(
                id=op_id,
                kind="closeOpportunity",
                correlation_id=f"corr-{op_id}",
                client_id="child",
                aggregate_key=aggregate,
                input={"n": n, "padding": "x" * 500},
            )
            await tx.add_steps(op_id, ["erp", "billing"])
            for step in ("erp", "billing"):
                await tx.enqueue(
                    NewMessage(
                        operation_id=op_id,
                        step=step,
                        aggregate_key=aggregate,
                        system=step,
                        type="Test",
                        payload={"n": n},
                        idempotency_key=f"{op_id}:{step}",
                    )
                )
            await tx.complete_idempotent("child", op_id, {"id": op_id})
        sys.stdout.write(f"{op_id}\n")
        sys.stdout.flush()


async def main(url: str, run: str, writers: int) -> None:
    async with open_store(url) as store, anyio.create_task_group() as tg:
        for worker in range(writers):
            tg.start_soon(writer, store, run, worker)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
