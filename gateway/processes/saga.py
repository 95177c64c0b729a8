"""The saga engine: how a flow's steps become outbox messages and how results advance it.

A ``Flow`` is an ordered list of ``Step``s. Each step is one call to one system actor:

- ``prepare(view)`` computes the step's payload (plain JSON) from the operation's input and
  the results of the steps before it, or answers ``None`` to skip the step;
- ``build(payload, key)`` turns that payload into the ``actors.messages`` message, carrying
  the step's idempotency key ``<operation id>.<step>``;
- ``record(result)`` keeps what later steps and the operation's result need.

The payload is computed when the step is enqueued (in the transaction that recorded the
previous step), so a dead letter shows exactly what was sent, and a replay sends it again
unchanged. Every function here takes the caller's transaction: the outbox message's
outcome, the saga step, the operation and the next message commit together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from actors.messages import Message, Priority
from canonical import System
from gateway.store import (
    NewAudit,
    NewMessage,
    Operation,
    OperationStatus,
    OutboxMessage,
    SagaStep,
    StepStatus,
    Transaction,
)
from gateway.store.records import JSON

__all__ = [
    "Flow",
    "SagaView",
    "Step",
    "begin_saga",
    "dead_letter_step",
    "skip_step",
    "start_saga",
    "step_key",
    "succeed_step",
]

log = logging.getLogger(__name__)


def step_key(operation_id: str, step: str) -> str:
    """The idempotency key a step's downstream call carries: stable across redeliveries."""
    return f"{operation_id}.{step}"


@dataclass(frozen=True, slots=True)
class SagaView:
    """What a step's ``prepare`` may look at: the operation's input and earlier results."""

    operation_id: str
    input: Mapping[str, Any]
    results: Mapping[str, Any]

    def result(self, step: str) -> Mapping[str, Any]:
        value = self.results.get(step)
        return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True, slots=True)
class Step:
    """One call of a saga (see the module docstring)."""

    name: str
    system: System
    prepare: Callable[[SagaView], JSON | None]
    build: Callable[[Mapping[str, Any], str], Message]
    record: Callable[[Any], JSON]
    #: a delivery that fails for good skips this step instead of dead-lettering it
    optional: bool = False
    #: cross-reference ids the recorded result reveals (linked to the operation's customer)
    links: Callable[[Mapping[str, Any]], Mapping[System, str]] | None = None


@dataclass(frozen=True, slots=True)
class Flow:
    """A business flow: its mutation name, its steps, and its compensation policy."""

    kind: str
    steps: tuple[Step, ...]
    #: one sentence per step: what happens when that step dead-letters
    compensation: Mapping[str, str] = field(default_factory=dict)

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"flow {self.kind} has no step {name!r}")

    def step_or_none(self, name: str) -> Step | None:
        return next((step for step in self.steps if step.name == name), None)

    def message_type(self, step: str) -> str:
        return f"{self.kind}/{step}"


async def start_saga(
    tx: Transaction,
    flow: Flow,
    *,
    operation_id: str,
    correlation_id: str,
    client_id: str,
    aggregate_key: str,
    input: Mapping[str, Any],
) -> Operation:
    """Write the operation, all its steps (PENDING) and the first outbox message."""
    operation, _ = await begin_saga(
        tx,
        flow,
        operation_id=operation_id,
        correlation_id=correlation_id,
        client_id=client_id,
        aggregate_key=aggregate_key,
        input=input,
    )
    return operation


async def begin_saga(
    tx: Transaction,
    flow: Flow,
    *,
    operation_id: str,
    correlation_id: str,
    client_id: str,
    aggregate_key: str,
    input: Mapping[str, Any],
) -> tuple[Operation, list[SagaStep]]:
    """``start_saga``, answering the operation and its steps as written (what reading
    them back in the same unit would return, without the reads)."""
    operation = await tx.create_operation(
        id=operation_id,
        kind=flow.kind,
        correlation_id=correlation_id,
        client_id=client_id,
        aggregate_key=aggregate_key,
        input=dict(input),
    )
    # every row of the start carries the operation's own moment, so it is known here
    at = operation.created_at
    names = [step.name for step in flow.steps]
    await tx.add_steps(operation_id, names, now=at)
    view = SagaView(operation_id, operation.input, {})
    more, skipped = await _enqueue_from(tx, flow, operation, view, 0, now=at)
    steps = [
        SagaStep(
            operation_id=operation_id,
            name=name,
            status=StepStatus.SKIPPED if name in skipped else StepStatus.PENDING,
            attempts=0,
            result=None,
            error=None,
            updated_at=at,
        )
        for name in names
    ]
    if not more:
        updated = await tx.update_operation(operation, status=OperationStatus.SUCCEEDED)
        assert updated is not None  # an update of a given record answers it
        operation = updated
    return operation, steps


async def succeed_step(
    tx: Transaction,
    flow: Flow,
    message: OutboxMessage,
    owner: str,
    result: Any,
    *,
    known: Operation | None = None,
) -> Operation:
    """A delivery succeeded: complete the message, record the step, enqueue the next one.

    The writes whose answers are known go out with the unit's next statement (one round
    trip for the completion and the operation read, one for the rest and the caller's
    next lease): ``LeaseLost`` surfaces at the operation read, before anything else.

    ``known``: the operation as this process last committed it (``Store.recent_operation``),
    to skip the read; the update then checks the row is still that version and raises
    ``StaleOperation`` if not (roll back, and call again without ``known``). With it the
    whole unit, the caller's next lease included, is one round trip."""
    await tx.complete(message.id, owner)
    step = flow.step(message.step)
    recorded = step.record(result)
    return await _advance(
        tx,
        flow,
        message,
        step,
        recorded,
        StepStatus.SUCCEEDED,
        error=None,
        add_attempt=True,
        known=known,
    )


async def skip_step(
    tx: Transaction, flow: Flow, message: OutboxMessage, owner: str, reason: str
) -> Operation:
    """An optional step failed for good: complete the message, mark it skipped, go on."""
    await tx.complete(message.id, owner)
    step = flow.step(message.step)
    return await _advance(
        tx, flow, message, step, None, StepStatus.SKIPPED, error=reason, add_attempt=True
    )


async def dead_letter_step(
    tx: Transaction, flow: Flow, message: OutboxMessage, owner: str, reason: str
) -> Operation | None:
    """A step failed for good: dead-letter it and apply the flow's compensation policy.

    The policy of every flow here is forward recovery (each module's docstring says why
    per step): what earlier steps did stays, the failed step and the steps after it wait
    for an operator to fix the cause and replay the dead letter; the operation shows
    ``NEEDS_ATTENTION`` with the reason and what the policy did.
    """
    await tx.dead_letter(message.id, owner, reason=reason)
    if message.operation_id is None:
        return None
    await tx.upsert_step(
        message.operation_id, message.step, status=StepStatus.FAILED, error=reason, add_attempt=True
    )
    policy = flow.compensation.get(message.step, "earlier steps are kept; later steps wait")
    explanation = (
        f"step {message.step} ({message.system}) failed: {reason}. Compensation: {policy}. "
        f"Fix the cause, then replay dead letter {message.id} (crosswalk outbox replay "
        f"{message.id}, "
        f"or the replayDeadLetter mutation)."
    )
    operation = await tx.update_operation(
        message.operation_id, status=OperationStatus.NEEDS_ATTENTION, error=explanation
    )
    if operation is None:
        raise LookupError(
            f"outbox message {message.id} names unknown operation {message.operation_id}"
        )
    await _audit_step(tx, operation, message, StepStatus.FAILED, None, reason)
    return operation


async def _audit_step(
    tx: Transaction,
    operation: Operation,
    message: OutboxMessage,
    status: StepStatus,
    result: JSON,
    error: str | None,
) -> None:
    """The step's outcome in the audit trail, under the operation's correlation id: its
    result names what the step made (an order number, an invoice), so a trace by that key
    finds the operation. Held back with the unit's other writes (no round trip)."""
    await tx.append_audit(
        NewAudit(
            actor=operation.client_id,
            action="saga.step",
            subject=f"operation:{operation.id}",
            correlation_id=operation.correlation_id,
            detail={
                "step": message.step,
                "system": message.system,
                "status": status.value,
                "result": result,
                "error": error,
                "message_id": message.id,
                "attempt": message.attempts + 1,
                "customer": operation.aggregate_key,
            },
        )
    )


async def _advance(
    tx: Transaction,
    flow: Flow,
    message: OutboxMessage,
    step: Step,
    recorded: JSON,
    status: StepStatus,
    *,
    error: str | None,
    add_attempt: bool,
    known: Operation | None = None,
) -> Operation:
    assert message.operation_id is not None, "saga messages always belong to an operation"
    if known is not None and known.id != message.operation_id:
        raise ValueError(f"operation {known.id} given for a message of {message.operation_id}")
    operation = known or await tx.get_operation(message.operation_id)
    if operation is None:
        raise LookupError(
            f"outbox message {message.id} names unknown operation {message.operation_id}"
        )
    results = dict(operation.result or {})
    if status is StepStatus.SUCCEEDED:
        results[step.name] = recorded
    await tx.upsert_step(
        operation.id,
        step.name,
        status=status,
        result=recorded,
        error=error,
        add_attempt=add_attempt,
    )
    await _audit_step(tx, operation, message, status, recorded, error)
    if step.links is not None and isinstance(recorded, Mapping):
        await _link(tx, operation, step.links(recorded))
    view = SagaView(operation.id, operation.input, results)
    index = flow.steps.index(step)
    more, _ = await _enqueue_from(tx, flow, operation, view, index + 1)
    updated = await tx.update_operation(
        operation,
        status=OperationStatus.RUNNING if more else OperationStatus.SUCCEEDED,
        result=results,
        error=None,
        verify=known is not None,
    )
    assert updated is not None  # an update of a given record answers it
    return updated


async def _enqueue_from(
    tx: Transaction,
    flow: Flow,
    operation: Operation,
    view: SagaView,
    index: int,
    *,
    now: datetime | None = None,
) -> tuple[bool, set[str]]:
    """Enqueue the first step from ``index`` that has a payload; answers whether one was
    left, and the steps skipped on the way (no payload)."""
    skipped: set[str] = set()
    for step in flow.steps[index:]:
        payload = step.prepare(view)
        if payload is None:
            await tx.upsert_step(operation.id, step.name, status=StepStatus.SKIPPED, now=now)
            skipped.add(step.name)
            continue
        await tx.enqueue(
            NewMessage(
                operation_id=operation.id,
                step=step.name,
                aggregate_key=operation.aggregate_key,
                system=step.system.value,
                type=flow.message_type(step.name),
                payload=payload,
                idempotency_key=step_key(operation.id, step.name),
                priority=int(Priority.TRANSACTIONAL),
            ),
            now=now,
        )
        return True, skipped
    return False, skipped


async def _link(tx: Transaction, operation: Operation, ids: Mapping[System, str]) -> None:
    """Record the ids a step revealed for the operation's customer, unless they contradict
    the registry (then the registry is left for reconciliation, and the saga goes on)."""
    if not ids:
        return
    canonical = operation.aggregate_key
    current = await tx.get_xref(canonical)
    if current is not None:
        clashes = {s: v for s, v in ids.items() if current.get(s) not in (None, v)}
        if clashes:
            log.warning(
                "operation %s: not linking %s to %s, which already holds other ids",
                operation.id,
                clashes,
                canonical,
            )
            return
    for system, native in ids.items():
        owner = await tx.resolve(system, native)
        if owner is not None and owner != canonical and current is not None:
            log.warning(
                "operation %s: %s id %s belongs to %s, not %s; left for reconciliation",
                operation.id,
                system,
                native,
                owner,
                canonical,
            )
            return
    name = operation.input.get("name") if isinstance(operation.input, Mapping) else None
    await tx.link(ids, canonical_id=canonical, name=name if isinstance(name, str) else None)
