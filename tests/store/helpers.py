"""Small builders shared by the store tests."""

from __future__ import annotations

from datetime import datetime

from gateway.store import NewMessage, Operation, Store, Transaction


def message(
    aggregate: str,
    step: str,
    *,
    operation_id: str | None = None,
    system: str = "erp",
    priority: int = 1,
    available_at: datetime | None = None,
    payload: object = None,
) -> NewMessage:
    return NewMessage(
        operation_id=operation_id,
        step=step,
        aggregate_key=aggregate,
        system=system,
        type="Test",
        payload=payload if payload is not None else {"aggregate": aggregate, "step": step},
        idempotency_key=f"{operation_id or aggregate}:{step}",
        priority=priority,
        available_at=available_at,
    )


async def create_operation(
    tx: Transaction, op_id: str, *, aggregate: str = "cust-1", correlation: str = "corr-1"
) -> Operation:
    return await tx.create_operation(
        id=op_id,
        kind="onboardCustomer",
        correlation_id=correlation,
        client_id="widget",
        aggregate_key=aggregate,
        input={"name": "Acme GmbH", "country": "DE"},
    )


async def enqueued_id(target: Store | Transaction, new: NewMessage) -> int:
    """Enqueue ``new`` and answer its id (``enqueue`` answers nothing; a test that needs
    the id reads it back: the newest message of its aggregate, step and key)."""
    await target.enqueue(new)
    ids = [
        m.id
        for m in await target.list_messages(limit=1_000_000)
        if (m.aggregate_key, m.step, m.idempotency_key)
        == (new.aggregate_key, new.step, new.idempotency_key)
    ]
    return max(ids)
