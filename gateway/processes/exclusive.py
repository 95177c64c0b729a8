"""One live operation per business key: a deal is closed once, a renewal runs once.

Validation checks it early (to answer with every problem at once); the accepting
transaction checks it again, authoritatively: transactions are serialised by the store,
so of two requests racing to close one opportunity with different keys exactly one is
accepted and the other answers VALIDATION_FAILED.
"""

from __future__ import annotations

from dataclasses import dataclass

from canonical.validation import FieldProblem
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
    return await reader.find_holding(
        aggregate_key=aggregate_key,
        kind=kind,
        field=exclusive.field,
        value=exclusive.value,
        settled=exclusive.settled,
    )
