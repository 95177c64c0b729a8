"""Store throughput on a SQLite file: what the outbox can sustain before any network.

    .venv/bin/python scripts/bench_store.py [--messages 3000] [--aggregates 500]

Phases, each on a fresh file in a temporary directory (WAL, synchronous=FULL):

1. accept, 1 producer: one transaction per mutation, as the write path does it:
   idempotency claim, operation, its saga steps, the first outbox message, idempotency
   completion; one after the other, so every one pays its own fsync.
2. enqueue alone: one outbox message per transaction (the floor of any write).
3. accept, N producers: the same from N concurrent tasks (as concurrent HTTP requests);
   group commit shares each fsync among the transactions queued meanwhile.
4. lease + deliver: a dispatcher leases batches of 64 and records each delivery (message
   done, saga step, next step's message, operation status) in one transaction, the
   batch's deliveries in parallel (they are different customers); three-step sagas.
5. pipeline: N producers accepting while the dispatcher drains, at the same time.

Each line prints throughput, wall time and process CPU time per item (CPU is the
steadier figure when other processes share the machine).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import anyio

from gateway.store import (
    NewMessage,
    OperationStatus,
    OutboxMessage,
    StepStatus,
    Store,
    open_store,
    payload_fingerprint,
)

STEPS = ("erp.order", "billing.subscription", "support.entitlement")


def _message(op_id: str | None, aggregate: str, step: str) -> NewMessage:
    return NewMessage(
        operation_id=op_id,
        step=step,
        aggregate_key=aggregate,
        system=step.split(".")[0],
        type=step,
        payload={"operation": op_id, "step": step, "lines": [{"sku": "PRO", "qty": 3}]},
        idempotency_key=f"{op_id or aggregate}:{step}",
    )


async def accept(store: Store, n: int, aggregate: str) -> None:
    op_id = f"op-{n}"
    request = {"opportunity": f"006{n:012d}", "amount": "1200.00", "customer": aggregate}
    async with store.transaction() as tx:
        await tx.begin_idempotent("bench", f"key-{n}", payload_fingerprint(request))
        await tx.create_operation(
            id=op_id,
            kind="closeOpportunity",
            correlation_id=f"corr-{n}",
            client_id="bench",
            aggregate_key=aggregate,
            input=request,
        )
        await tx.add_steps(op_id, STEPS)
        await tx.enqueue(_message(op_id, aggregate, STEPS[0]))
        await tx.complete_idempotent(
            "bench", f"key-{n}", {"id": op_id, "status": "PENDING"}, operation_id=op_id
        )


async def deliver(store: Store, owner: str, message: OutboxMessage, done: list[int]) -> None:
    """Record one delivered step: complete, saga step, next message, operation status."""
    assert message.operation_id is not None
    index = STEPS.index(message.step)
    async with store.transaction() as tx:
        await tx.complete(message.id, owner)
        await tx.upsert_step(
            message.operation_id,
            message.step,
            status=StepStatus.SUCCEEDED,
            result={"id": f"{message.step}-{message.id}"},
            add_attempt=True,
        )
        if index + 1 < len(STEPS):
            await tx.enqueue(
                _message(message.operation_id, message.aggregate_key, STEPS[index + 1])
            )
            status = OperationStatus.RUNNING
        else:
            status = OperationStatus.SUCCEEDED
        await tx.update_operation(message.operation_id, status=status)
    done[0] += 1


async def dispatch(store: Store, owner: str, total_messages: int, done: list[int]) -> None:
    """Lease and deliver (each batch's messages in parallel, as across customers) until
    ``done[0]`` reaches ``total_messages``."""
    while done[0] < total_messages:
        batch = await store.lease(owner, limit=64, lease_seconds=60)
        if not batch:
            await anyio.sleep(0.001)  # nothing due: poll again shortly
            continue
        async with anyio.create_task_group() as tg:
            for message in batch:
                tg.start_soon(deliver, store, owner, message, done)


class Phase:
    """Wall and CPU time of one phase (CPU of the whole process, the connection threads included:
    steadier than wall time when other processes share the machine)."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def report(self, name: str, count: int, unit: str) -> None:
        wall = time.perf_counter() - self.wall
        cpu = time.process_time() - self.cpu
        print(
            f"{name:<30} {count:>6} {unit:<9} {wall:6.2f} s {count / wall:7.0f} {unit}/s"
            f"  wall {wall / count * 1e6:6.0f} us  cpu {cpu / count * 1e6:6.0f} us each"
        )


async def produce(store: Store, numbers: range, aggregates: int) -> None:
    for n in numbers:
        await accept(store, n, f"cust-{n % aggregates}")


async def main(messages: int, aggregates: int, producers: int) -> None:
    mutations = messages // len(STEPS)
    with tempfile.TemporaryDirectory() as tmp:
        async with open_store(f"sqlite:///{Path(tmp) / 'serial.db'}") as store:
            phase = Phase()
            await produce(store, range(mutations), aggregates)
            phase.report("accept, 1 producer", mutations, "mutations")

            phase = Phase()
            for n in range(messages):
                await store.enqueue(_message(None, f"other-{n % aggregates}", STEPS[0]))
            phase.report("enqueue alone, 1 producer", messages, "messages")

        async with open_store(f"sqlite:///{Path(tmp) / 'grouped.db'}") as store:
            phase = Phase()
            async with anyio.create_task_group() as tg:
                for p in range(producers):
                    tg.start_soon(produce, store, range(p, mutations, producers), aggregates)
            phase.report(f"accept, {producers} producers", mutations, "mutations")

            phase = Phase()
            done = [0]
            await dispatch(store, "bench", mutations * len(STEPS), done)
            phase.report("lease+deliver, 3-step sagas", done[0], "messages")

        async with open_store(f"sqlite:///{Path(tmp) / 'pipeline.db'}") as store:
            phase = Phase()
            done = [0]
            async with anyio.create_task_group() as tg:
                for p in range(producers):
                    tg.start_soon(produce, store, range(p, mutations, producers), aggregates)
                tg.start_soon(dispatch, store, "bench", mutations * len(STEPS), done)
            phase.report("pipeline: accepted", mutations, "mutations")
            phase.report("pipeline: delivered", done[0], "messages")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--aggregates", type=int, default=500)
    parser.add_argument("--producers", type=int, default=32)
    args = parser.parse_args()
    anyio.run(main, args.messages, args.aggregates, args.producers)
