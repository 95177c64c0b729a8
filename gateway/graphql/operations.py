"""GraphQL types of the write path (``Operation``, ``DeadLetter``) and its Query fields.

The GraphQL ``Query`` type adds ``operation(id:)`` and ``deadLetters`` by inheriting the
``OperationQueries`` mixin::

    @strawberry.type
    class Query(OperationQueries, ...):
        ...

``operation`` needs the ``operation:read`` scope, and shows a client only the operations
it started (API key and JWT clients alike: the owner is the client id the mutation was
accepted under); a client with the ``ops`` scope sees every operation. Someone else's
operation reads as unknown (null), so ids cannot be probed. ``deadLetters`` needs the
``deadletter:replay`` scope (operators only: dead letters show message payloads).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from canonical import System
from gateway.governance.clients import Client
from gateway.graphql.context import require_scope
from gateway.graphql.errors import CodedError, ErrorCode
from gateway.graphql.types import SystemName
from gateway.processes.views import DeadLetterView, OperationView, StepView, operation_view
from gateway.store import MessageStatus

# ``System`` is exposed as the ``SystemName`` enum by gateway.graphql.types
assert SystemName is System

__all__ = [
    "DeadLetter",
    "DeadLetterConnection",
    "Operation",
    "OperationQueries",
    "OperationStatus",
    "OperationStep",
    "load_operation",
    "may_see_operation",
    "typed",
]


F = TypeVar("F", bound=Callable[..., Any])


def typed(decorator: Any) -> Callable[[F], F]:
    """A strawberry resolver decorator (field, mutation, subscription), typed for mypy."""
    return cast(Callable[[F], F], decorator)


@strawberry.enum(description="Where a governed mutation stands.")
class OperationStatus(enum.Enum):
    PENDING = strawberry.enum_value("PENDING", description="Accepted and stored; no step done.")
    RUNNING = strawberry.enum_value("RUNNING", description="At least one step done, more to go.")
    SUCCEEDED = strawberry.enum_value("SUCCEEDED", description="Every step done.")
    NEEDS_ATTENTION = strawberry.enum_value(
        "NEEDS_ATTENTION",
        description="A step failed for good and waits in the dead-letter queue; see reason.",
    )
    FAILED = strawberry.enum_value("FAILED", description="Given up without compensation.")
    COMPENSATED = strawberry.enum_value(
        "COMPENSATED", description="Given up; the compensation policy undid what it undoes."
    )


@strawberry.enum(description="One saga step's state.")
class StepStatus(enum.Enum):
    PENDING = strawberry.enum_value("PENDING", description="Not delivered yet.")
    RUNNING = strawberry.enum_value("RUNNING", description="Being delivered.")
    SUCCEEDED = strawberry.enum_value("SUCCEEDED", description="Done in its system.")
    FAILED = strawberry.enum_value("FAILED", description="Failed for good (a dead letter).")
    COMPENSATING = strawberry.enum_value("COMPENSATING", description="Being undone.")
    COMPENSATED = strawberry.enum_value("COMPENSATED", description="Undone.")
    SKIPPED = strawberry.enum_value(
        "SKIPPED", description="Not needed, or an optional step that failed and was passed over."
    )


@strawberry.type(description="One step of an operation: one call to one back-office system.")
class OperationStep:
    name: str = strawberry.field(description="The step's name, e.g. erp_order.")
    system: System | None = strawberry.field(description="The system the step writes to.")
    status: StepStatus = strawberry.field(description="The step's state.")
    attempts: int = strawberry.field(description="Deliveries tried so far.")
    error: str | None = strawberry.field(description="The last failure, if any.")
    result: JSON | None = strawberry.field(description="What the system answered (its ids).")

    @classmethod
    def from_view(cls, view: StepView) -> OperationStep:
        return cls(
            name=view.name,
            system=System(view.system) if view.system else None,
            status=StepStatus(view.status),
            attempts=view.attempts,
            error=view.error,
            result=view.result,
        )


@strawberry.type(
    description="A governed mutation's progress. Mutations answer it at once; follow it with "
    "Query.operation or Subscription.operation."
)
class Operation:
    id: strawberry.ID = strawberry.field(description="The operation id (op_...).")
    kind: str = strawberry.field(description="The mutation that started it, e.g. closeOpportunity.")
    status: OperationStatus = strawberry.field(description="Where it stands.")
    correlation_id: str = strawberry.field(
        description="The correlation id every step's call and audit entry carries."
    )
    customer_id: str = strawberry.field(
        description="The customer it is about (canonical id); its steps run in order per customer."
    )
    steps: list[OperationStep] = strawberry.field(description="The saga's steps, in order.")
    reason: str | None = strawberry.field(
        description="Why it needs attention: the failed step, the error and how to fix it."
    )
    result: JSON | None = strawberry.field(description="Each finished step's result, by step name.")
    created_at: datetime = strawberry.field(description="When it was accepted.")
    updated_at: datetime = strawberry.field(description="When it last changed.")

    @classmethod
    def from_view(cls, view: OperationView) -> Operation:
        return cls(
            id=strawberry.ID(view.id),
            kind=view.kind,
            status=OperationStatus(view.status),
            correlation_id=view.correlation_id,
            customer_id=view.customer_id,
            steps=[OperationStep.from_view(s) for s in view.steps],
            reason=view.reason,
            result=view.result,
            created_at=view.created_at,
            updated_at=view.updated_at,
        )


@strawberry.type(
    description="An outbox message that failed for good; it blocks its customer's queue."
)
class DeadLetter:
    id: strawberry.ID = strawberry.field(description="The message id; pass it to replayDeadLetter.")
    operation_id: strawberry.ID | None = strawberry.field(description="Its operation.")
    step: str = strawberry.field(description="The saga step it delivers.")
    system: str = strawberry.field(description="The system it is for.")
    type: str = strawberry.field(description="<mutation>/<step>.")
    customer_id: str = strawberry.field(description="The customer whose queue it blocks.")
    attempts: int = strawberry.field(description="Deliveries tried.")
    reason: str | None = strawberry.field(description="The last error.")
    payload: JSON | None = strawberry.field(description="What is sent to the system.")
    created_at: datetime = strawberry.field(description="When it was enqueued.")
    updated_at: datetime = strawberry.field(description="When it became a dead letter.")

    @classmethod
    def from_view(cls, view: DeadLetterView) -> DeadLetter:
        return cls(
            id=strawberry.ID(str(view.id)),
            operation_id=strawberry.ID(view.operation_id) if view.operation_id else None,
            step=view.step,
            system=view.system,
            type=view.type,
            customer_id=view.customer_id,
            attempts=view.attempts,
            reason=view.reason,
            payload=view.payload,
            created_at=view.created_at,
            updated_at=view.updated_at,
        )


@strawberry.type(description="A page of dead letters, oldest first.")
class DeadLetterConnection:
    items: list[DeadLetter] = strawberry.field(description="The dead letters on this page.")
    next_cursor: str | None = strawberry.field(description="Pass as after: for the next page.")


def may_see_operation(client: Client, owner: str) -> bool:
    """Operations are visible to the client that started them and to operators."""
    return client.id == owner or client.has_scope("ops")


async def load_operation(info: Info[Any, Any], operation_id: str) -> Operation | None:
    """The operation as it stands now, or ``None`` (unknown, or not the caller's)."""
    context = info.context
    async with context.runtime.store.reader() as reader:
        operation = await reader.get_operation(operation_id)
        if operation is None or not may_see_operation(context.client, operation.client_id):
            return None
        view = operation_view(operation, await reader.get_steps(operation_id))
    return Operation.from_view(view)


@strawberry.type(description="One system's outbox messages by state.")
class OutboxBacklog:
    system: str = strawberry.field(description="The system the messages go to.")
    pending: int = strawberry.field(description="Waiting for delivery.")
    leased: int = strawberry.field(description="Being delivered now.")
    dead: int = strawberry.field(description="Failed for good: waiting for an operator.")
    done: int = strawberry.field(description="Delivered (until retention purges them).")


@strawberry.type(description="The outbox backlog.")
class OutboxSummary:
    systems: list[OutboxBacklog] = strawberry.field(description="Per system.")
    pending: int = strawberry.field(description="Waiting for delivery, every system.")
    dead: int = strawberry.field(description="Dead letters, every system.")
    oldest_open_age_seconds: float | None = strawberry.field(
        description="How long the oldest message still waiting for delivery has waited."
    )


@strawberry.type
class OperationQueries:
    """Query fields of the write path; ``Query`` inherits them."""

    @typed(strawberry.field(description="A governed mutation's operation by id (operation:read)."))
    async def operation(self, info: Info[Any, Any], id: strawberry.ID) -> Operation | None:
        require_scope(info, "operation:read")
        return await load_operation(info, str(id))

    @typed(
        strawberry.field(
            description="The outbox backlog per system (needs ops): messages waiting "
            "(pending), being delivered (leased) and dead, and the oldest waiting one's age."
        )
    )
    async def outbox(self, info: Info[Any, Any]) -> OutboxSummary:
        require_scope(info, "ops")
        status = await info.context.runtime.store.outbox_status()
        rows = [
            OutboxBacklog(
                system=system,
                pending=counts.get(MessageStatus.PENDING, 0),
                leased=counts.get(MessageStatus.LEASED, 0),
                dead=counts.get(MessageStatus.DEAD, 0),
                done=counts.get(MessageStatus.DONE, 0),
            )
            for system, counts in sorted(status.counts.items())
        ]
        oldest = status.oldest_open
        return OutboxSummary(
            systems=rows,
            pending=status.total(MessageStatus.PENDING),
            dead=status.total(MessageStatus.DEAD),
            oldest_open_age_seconds=None
            if oldest is None
            else max(0.0, (datetime.now(UTC) - oldest).total_seconds()),
        )

    @typed(
        strawberry.field(
            description="Dead letters, oldest first (needs deadletter:replay): outbox messages "
            "that failed for good and wait for an operator to replay them."
        )
    )
    async def dead_letters(
        self, info: Info[Any, Any], first: int = 50, after: str | None = None
    ) -> DeadLetterConnection:
        require_scope(info, "deadletter:replay")
        if not 1 <= first <= 100:
            raise CodedError(
                ErrorCode.VALIDATION_FAILED,
                f"first must be between 1 and 100, got {first}",
                extensions={"fields": [{"field": "first", "reason": "must be 1 to 100"}]},
            )
        try:
            cursor = int(after) if after else None
        except ValueError:
            raise CodedError(
                ErrorCode.VALIDATION_FAILED,
                f"after {after!r} is not a cursor from deadLetters",
                extensions={"fields": [{"field": "after", "reason": "not a cursor"}]},
            ) from None
        store = info.context.runtime.store
        page = await store.list_messages(status=MessageStatus.DEAD, limit=first + 1, after=cursor)
        items = [m for m in page[:first] if m.status is MessageStatus.DEAD]
        more = len(page) > first
        return DeadLetterConnection(
            items=[DeadLetter.from_view(DeadLetterView.build(m)) for m in items],
            next_cursor=str(items[-1].id) if more and items else None,
        )
