"""What a client sees of an operation: ``OperationView`` (the GraphQL ``Operation``).

The view is plain data with a JSON form, because the first answer to a mutation is
stored with its Idempotency-Key and answered again, unchanged, to a retry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.store import Operation, OutboxMessage, Reader, SagaStep
from gateway.store.records import JSON

__all__ = ["DeadLetterView", "OperationView", "StepView", "load_operation_view", "operation_view"]


@dataclass(frozen=True, slots=True)
class StepView:
    name: str
    system: str | None
    status: str
    attempts: int
    error: str | None
    result: JSON

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "system": self.system,
            "status": self.status,
            "attempts": self.attempts,
            "error": self.error,
            "result": self.result,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StepView:
        return cls(
            name=data["name"],
            system=data.get("system"),
            status=data["status"],
            attempts=int(data.get("attempts", 0)),
            error=data.get("error"),
            result=data.get("result"),
        )


@dataclass(frozen=True, slots=True)
class OperationView:
    """An operation with its steps; ``reason`` explains NEEDS_ATTENTION or FAILED."""

    id: str
    kind: str
    status: str
    correlation_id: str
    customer_id: str
    steps: tuple[StepView, ...]
    reason: str | None
    result: JSON
    created_at: datetime
    updated_at: datetime

    @classmethod
    def build(
        cls, operation: Operation, steps: Sequence[SagaStep], systems: Mapping[str, str]
    ) -> OperationView:
        return cls(
            id=operation.id,
            kind=operation.kind,
            status=operation.status.value,
            correlation_id=operation.correlation_id,
            customer_id=operation.aggregate_key,
            steps=tuple(
                StepView(
                    name=s.name,
                    system=systems.get(s.name),
                    status=s.status.value,
                    attempts=s.attempts,
                    error=s.error,
                    result=s.result,
                )
                for s in steps
            ),
            reason=operation.error,
            result=operation.result,
            created_at=operation.created_at,
            updated_at=operation.updated_at,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "correlation_id": self.correlation_id,
            "customer_id": self.customer_id,
            "steps": [s.to_json() for s in self.steps],
            "reason": self.reason,
            "result": self.result,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OperationView:
        return cls(
            id=data["id"],
            kind=data["kind"],
            status=data["status"],
            correlation_id=data["correlation_id"],
            customer_id=data["customer_id"],
            steps=tuple(StepView.from_json(s) for s in data.get("steps", ())),
            reason=data.get("reason"),
            result=data.get("result"),
            created_at=datetime.fromisoformat(data["created_at"]),
            updated_at=datetime.fromisoformat(data["updated_at"]),
        )


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    """A dead outbox message as operators see it."""

    id: int
    operation_id: str | None
    step: str
    system: str
    type: str
    customer_id: str
    attempts: int
    reason: str | None
    payload: JSON
    created_at: datetime
    updated_at: datetime

    @classmethod
    def build(cls, message: OutboxMessage) -> DeadLetterView:
        return cls(
            id=message.id,
            operation_id=message.operation_id,
            step=message.step,
            system=message.system,
            type=message.type,
            customer_id=message.aggregate_key,
            attempts=message.attempts,
            reason=message.last_error,
            payload=message.payload,
            created_at=message.created_at,
            updated_at=message.updated_at,
        )


async def load_operation_view(reader: Reader, operation_id: str) -> OperationView | None:
    """The operation and its steps as one view, or ``None`` for an unknown id."""
    operation = await reader.get_operation(operation_id)
    if operation is None:
        return None
    return operation_view(operation, await reader.get_steps(operation_id))


def operation_view(operation: Operation, steps: Sequence[SagaStep]) -> OperationView:
    """The view of an operation and its steps (in order), with each step's system."""
    from gateway.processes.flows import FLOWS  # flows import the saga engine, not views

    flow = FLOWS.get(operation.kind)
    systems = {s.name: s.system.value for s in flow.steps} if flow else {}
    return OperationView.build(operation, steps, systems)
