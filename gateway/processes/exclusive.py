"""One live operation per business key: a deal is closed once, a renewal runs once.

Validation checks it early (to answer with every problem at once); the accepting
transaction checks it again, authoritatively: transactions are serialised by the store,
so of two requests racing to close one opportunity with different keys exactly one is
accepted and the other answers VALIDATION_FAILED.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.canonical.validation import FieldProblem
from gateway.store import Operation, OperationStatus, Reader, Store

__all__ = ["Exclusive", "find_blocker"]


@dataclass(frozen=True, slots=True)
class Exclusive:
    """At most one unsettled operation of a kind per customer may carry ``value`` in its
    input ``field``; ``reason`` names the blocking operation (``{id}``, ``{status}``)."""

    field: str
    value: str
    settled: frozenset[OperationStatus]
    reason: str

    def problem(self, blocker: Operation) -> FieldProblem:
        return FieldProblem(
            self.field, self.reason.format(id=blocker.id, status=blocker.status.value)
        )


async def find_blocker(
    reader: Reader | Store, aggregate_key: str, kind: str, exclusive: Exclusive
) -> Operation | None:
    """The customer's unsettled operation of ``kind`` with the same value, if any."""
    after: str | None = None
    while True:
        page = await reader.list_operations(aggregate_key=aggregate_key, limit=200, after=after)
        for operation in page.items:
            if (
                operation.kind == kind
                and operation.status not in exclusive.settled
                and isinstance(operation.input, Mapping)
                and operation.input.get(exclusive.field) == exclusive.value
            ):
                return operation
        if page.next_cursor is None:
            return None
        after = page.next_cursor
