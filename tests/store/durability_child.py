"""Child process for the durability test: commit forever, report each commit on stdout.

Run as ``python durability_child.py <store url> <run name>``. Each line ``<n>`` is printed
only after transaction ``n`` (one operation, two outbox messages, one idempotency record) committed,
so the parent knows that every printed ``n`` must survive a SIGKILL.
"""

from __future__ import annotations

import sys

import anyio

from gateway.store import NewMessage, open_store


async def main(url: str, run: str) -> None:
    async with open_store(url) as store:
        n = 0
        while True:
            n += 1
            async with store.transaction() as tx:
                await tx.begin_idempotent(
                    "child", f"{run}-key-{n}", "fp", operation_id=f"{run}-op-{n}"
                )
                await tx.create_operation(
                    id=f"{run}-op-{n}",
                    kind="closeOpportunity",
                    correlation_id=f"{run}-corr-{n}",
                    client_id="child",
                    aggregate_key=f"cust-{n % 7}",
                    input={"n": n, "padding": "x" * 500},
                )
                for step in ("erp", "billing"):
                    await tx.enqueue(
                        NewMessage(
                            operation_id=f"{run}-op-{n}",
                            step=step,
                            aggregate_key=f"cust-{n % 7}",
                            system=step,
                            type="Test",
                            payload={"n": n},
                            idempotency_key=f"{run}-op-{n}:{step}",
                        )
                    )
            sys.stdout.write(f"{n}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2])
