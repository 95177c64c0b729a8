"""Replaying or discarding dead letters: the saga resumes, or ends as FAILED.

Used by ``crosswalk outbox replay`` and the ``replayDeadLetter`` mutation. In one
transaction the message returns to pending (attempts reset, due now), its saga step
returns to PENDING, and its operation from NEEDS_ATTENTION to RUNNING (unless another of
its messages is still dead). The dispatcher of this process is woken at once; one in
another process finds the message at its next poll.

Discarding (``crosswalk outbox discard ID --reason``, ``discardDeadLetter``) is the way
out when a step must not be retried: in one transaction the message is set aside (its
customer's queue moves on), its step becomes FAILED with the reason, and its operation
FAILED (a terminal state: a business key it held, such as an opportunity being closed,
is free for a new attempt). Nothing is undone in the systems: steps that succeeded stay
done, as the operation's steps show. Who discarded it and why goes to the audit trail.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gateway.processes.signal import outbox_signal
from gateway.processes.views import OperationView, load_operation_view
from gateway.store import MessageStatus, NewAudit, OperationStatus, StepStatus, Store, Transaction

__all__ = ["discard_dead_letter", "replay_all", "replay_dead_letter"]


async def replay_dead_letter(store: Store, message_id: int) -> tuple[bool, OperationView | None]:
    """Replay one dead letter: (whether it was dead, its operation as it now stands)."""
    return await _handle_dead(store, message_id, lambda tx: _replay(tx, message_id))


async def _handle_dead(
    store: Store, message_id: int, change: Callable[[Transaction], Awaitable[bool]]
) -> tuple[bool, OperationView | None]:
    """Apply ``change`` to one dead letter in one transaction and read its operation
    back; a change wakes the dispatcher (the customer's queue was blocked behind it)."""
    async with store.transaction() as tx:
        changed = await change(tx)
        message = await tx.get_message(message_id)
        view = None
        if message is not None and message.operation_id is not None:
            view = await load_operation_view(tx, message.operation_id)
    if changed:
        outbox_signal(store).notify()
    return changed, view


async def replay_all(store: Store) -> int:
    """Replay every dead letter; returns how many."""
    count = 0
    while True:
        dead = await store.list_messages(status=MessageStatus.DEAD, limit=100)
        if not dead:
            break
        async with store.transaction() as tx:
            for message in dead:
                count += await _replay(tx, message.id)
    if count:
        outbox_signal(store).notify()
    return count


async def _replay(tx: Transaction, message_id: int) -> bool:
    message = await tx.replay(message_id)
    if message is None:  # no such dead letter
        return False
    if message.operation_id is None:
        return True
    await tx.upsert_step(message.operation_id, message.step, status=StepStatus.PENDING, error=None)
    others = [
        m
        for m in await tx.list_messages(
            operation_id=message.operation_id, status=MessageStatus.DEAD
        )
        if m.id != message_id
    ]
    operation = await tx.get_operation(message.operation_id)
    if operation is not None and operation.status is OperationStatus.NEEDS_ATTENTION and not others:
        await tx.update_operation(operation.id, status=OperationStatus.RUNNING, error=None)
    await tx.append_audit(
        NewAudit(
            actor="operator",
            action="outbox.replay",
            subject=f"operation:{message.operation_id}",
            correlation_id=operation.correlation_id if operation else None,
            detail={"message_id": message_id, "step": message.step},
        )
    )
    return True


async def discard_dead_letter(
    store: Store, message_id: int, *, actor: str, reason: str
) -> tuple[bool, OperationView | None]:
    """Discard one dead letter: (whether it was dead, its operation as it now stands)."""
    reason = reason.strip()
    if not reason:
        raise ValueError("a discard needs a reason: it is kept in the audit trail")
    return await _handle_dead(
        store, message_id, lambda tx: _discard(tx, message_id, actor=actor, reason=reason)
    )


async def _discard(tx: Transaction, message_id: int, *, actor: str, reason: str) -> bool:
    message = await tx.discard(message_id)
    if message is None:  # no such dead letter
        return False
    operation = None
    if message.operation_id is not None:
        why = f"step {message.step} discarded by {actor}: {reason}"
        await tx.upsert_step(
            message.operation_id, message.step, status=StepStatus.FAILED, error=why
        )
        operation = await tx.get_operation(message.operation_id)
        if operation is not None and operation.status not in (
            OperationStatus.SUCCEEDED,
            OperationStatus.FAILED,
            OperationStatus.COMPENSATED,
        ):
            await tx.update_operation(operation.id, status=OperationStatus.FAILED, error=why)
    await tx.append_audit(
        NewAudit(
            actor=actor,
            action="outbox.discard",
            subject=f"operation:{message.operation_id}" if message.operation_id else "outbox",
            correlation_id=operation.correlation_id if operation else None,
            detail={"message_id": message_id, "step": message.step, "reason": reason},
        )
    )
    return True
