"""The write path's front door: idempotency, validation, then one transaction.

    write = WritePath(store, systems, reference)
    view = await write.submit("closeOpportunity", {"opportunityId": "006..."},
                              caller=Caller("demo-widget"), idempotency_key="k-1",
                              correlation_id="c-1")

Idempotency (IETF Idempotency-Key draft), per client and key, with a SHA-256 fingerprint
of the mutation name and its input:

- a completed key with the same fingerprint answers the stored first response
  (``OperationView`` as it was when accepted), without validating again;
- a key whose first request is still being validated in this process answers
  ``IdempotencyConflict``; a key used with another payload ``IdempotencyMismatch``;
- keys expire after ``idempotency.ttl_hours`` (``policies/outbox.toml``, default 24 h).

The key is claimed (``begin_idempotent``) in the same transaction that writes the
operation, its saga steps, the first outbox message, the cross-reference links and the
stored response, so a crash leaves either everything or nothing: never a key stuck "in
flight". Two processes racing with one key both validate, exactly one commits, and the
other answers the first one's response.

Validation failures raise ``ValidationFailed`` before any write.
"""

from __future__ import annotations

import logging
import uuid
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from canonical import System
from gateway.governance.outbox import OutboxPolicy
from gateway.governance.reference import ReferenceData
from gateway.processes.context import Accepted, Caller, CommandContext, SystemsLike
from gateway.processes.errors import IdempotencyConflict, IdempotencyMismatch, ValidationFailed
from gateway.processes.exclusive import find_blocker
from gateway.processes.flows import COMMANDS
from gateway.processes.saga import begin_saga
from gateway.processes.signal import outbox_signal
from gateway.processes.views import OperationView, operation_view
from gateway.store import (
    IdempotencyOutcome,
    IdempotencyState,
    NewAudit,
    Store,
    Transaction,
    payload_fingerprint,
)

__all__ = ["WritePath", "write_path_for"]

log = logging.getLogger(__name__)


class WritePath:
    """Accepts governed mutations for one store and set of actors (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        systems: SystemsLike,
        reference: ReferenceData,
        *,
        policy: OutboxPolicy | None = None,
        owner_of: Callable[[str], str | None] = lambda _field: None,
        read_timeout: float = 5.0,
    ) -> None:
        self.store = store
        self.systems = systems
        self.reference = reference
        self.policy = policy or OutboxPolicy()
        self.owner_of = owner_of
        self.read_timeout = read_timeout
        #: (client, key) -> fingerprint of requests being validated right now
        self._in_flight: dict[tuple[str, str], str] = {}

    async def submit(
        self,
        kind: str,
        input: Mapping[str, Any],
        *,
        caller: Caller,
        idempotency_key: str | None,
        correlation_id: str,
    ) -> OperationView:
        command = COMMANDS[kind]
        fingerprint = payload_fingerprint({"mutation": kind, "input": dict(input)})
        slot = (caller.client_id, idempotency_key) if idempotency_key else None
        if slot is not None:
            replay = await self._check_key(slot, fingerprint)
            if replay is not None:
                return replay
            self._in_flight[slot] = fingerprint
        try:
            context = CommandContext(
                store=self.store,
                systems=self.systems,
                reference=self.reference,
                caller=caller,
                owner_of=self.owner_of,
                read_timeout=self.read_timeout,
            )
            accepted = await command.validate(context, input)
            operation_id = f"op_{uuid.uuid4().hex}"
            async with self.store.transaction() as tx:
                if slot is not None:
                    claim = await tx.begin_idempotent(
                        slot[0],
                        slot[1],
                        fingerprint,
                        operation_id=operation_id,
                        ttl=self.policy.idempotency_ttl,
                    )
                    if claim.outcome is IdempotencyOutcome.REPLAY:
                        return OperationView.from_json(claim.record.response)
                    if claim.outcome is IdempotencyOutcome.MISMATCH:
                        raise _mismatch(slot[1])
                    if claim.outcome is IdempotencyOutcome.CONFLICT:
                        raise _conflict(slot[1])
                aggregate = await self._link(tx, accepted)
                if accepted.exclusive is not None:
                    # again, inside the serialised transaction: a racing twin loses here
                    blocker = await find_blocker(tx, aggregate, kind, accepted.exclusive)
                    if blocker is not None:
                        raise ValidationFailed([accepted.exclusive.problem(blocker)])
                operation, steps = await begin_saga(
                    tx,
                    command.flow,
                    operation_id=operation_id,
                    correlation_id=correlation_id,
                    client_id=caller.client_id,
                    aggregate_key=aggregate,
                    input=accepted.input,
                )
                # as written, not read back: the unit holds the write lock
                view = operation_view(operation, steps)
                if slot is not None:
                    await tx.complete_idempotent(
                        slot[0], slot[1], view.to_json(), operation_id=operation_id
                    )
                await tx.append_audit(
                    NewAudit(
                        actor=caller.client_id,
                        action=f"mutation.{kind}",
                        subject=f"operation:{operation_id}",
                        correlation_id=correlation_id,
                        detail={"idempotency_key": idempotency_key, "customer": aggregate},
                    )
                )
        finally:
            if slot is not None:
                self._in_flight.pop(slot, None)
        outbox_signal(self.store).notify()
        return view

    async def _check_key(self, slot: tuple[str, str], fingerprint: str) -> OperationView | None:
        """Answer a retry without validating again; raise for conflict and mismatch."""
        record = await self.store.get_idempotency(*slot)
        if record is not None:
            if record.fingerprint != fingerprint:
                raise _mismatch(slot[1])
            if record.state is IdempotencyState.COMPLETED:
                return OperationView.from_json(record.response)
            raise _conflict(slot[1])
        running = self._in_flight.get(slot)
        if running is not None:
            raise _conflict(slot[1]) if running == fingerprint else _mismatch(slot[1])
        return None

    async def _link(self, tx: Transaction, accepted: Accepted) -> str:
        """Link the ids validation found; answer the customer's canonical id."""
        if accepted.links:
            known = accepted.canonical_id is not None and await tx.get_xref(accepted.canonical_id)
            if not known or any(known.get(s) is None for s in accepted.links):
                record = await tx.link(
                    dict(accepted.links), canonical_id=accepted.canonical_id, name=accepted.name
                )
                return record.canonical_id
        if accepted.canonical_id is not None:
            return accepted.canonical_id
        erp = accepted.links.get(System.ERP)
        return f"erp:{erp}" if erp else f"new:{uuid.uuid4().hex}"


def _conflict(key: str) -> IdempotencyConflict:
    return IdempotencyConflict(
        f"A request with Idempotency-Key {key!r} is still being processed; "
        "wait for its answer, then retry with the same key to get it again."
    )


def _mismatch(key: str) -> IdempotencyMismatch:
    return IdempotencyMismatch(
        f"Idempotency-Key {key!r} was already used with a different request; "
        "use a new key for a new request."
    )


_PATHS: weakref.WeakKeyDictionary[object, WritePath] = weakref.WeakKeyDictionary()


def write_path_for(runtime: Any) -> WritePath:
    """The ``WritePath`` of a ``gateway.runtime.Runtime`` (one per runtime's store), built
    from the runtime's loaded policies: reference data, outbox policy, field ownership."""
    path = _PATHS.get(runtime.store)
    if path is None:
        policies = runtime.policies
        ownership = policies.ownership
        path = WritePath(
            runtime.store,
            runtime.systems,
            policies.reference,
            policy=policies.outbox,
            owner_of=lambda field: ownership.customer.get(field),
        )
        _PATHS[runtime.store] = path
    return path
