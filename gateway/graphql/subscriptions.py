"""``Subscription``: follow an operation as it changes, and a customer's records as the
read model takes their changes (graphql-transport-ws).

``operation(id:)`` yields the operation at once, then after every committed status or
step change, until it reaches a final status (SUCCEEDED, FAILED, COMPENSATED).
``NEEDS_ATTENTION`` is not final: a replay may still complete it. Changes committed by
this process arrive through the store's watchers at once; changes made by another
process (a CLI replay) are picked up by a poll every ``POLL_SECONDS``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

import anyio
import strawberry
from strawberry.types import Info

from canonical import System
from gateway.graphql.context import require_scope
from gateway.graphql.errors import CodedError, ErrorCode
from gateway.graphql.identity import resolve_customer
from gateway.graphql.operations import Operation, load_operation, typed
from gateway.graphql.types import DataSource, SystemName
from gateway.readmodel.model import Applied, ReadModel
from gateway.store import OperationStatus

__all__ = ["POLL_SECONDS", "CustomerEvent", "Subscription"]

#: how often a subscription re-reads the operation in case another process changed it
POLL_SECONDS = 2.0

_FINAL = {OperationStatus.SUCCEEDED.value, OperationStatus.FAILED.value}
_FINAL.add(OperationStatus.COMPENSATED.value)


@strawberry.type(
    description="A change the read model applied to one of a customer's records: a "
    "canonical event, as each system's webhook or change feed told it."
)
class CustomerEvent:
    id: strawberry.ID = strawberry.field(description="Unique per applied change.")
    type: str = strawberry.field(
        description="`<system>.<kind>.<created|updated|deleted>`, e.g. `billing.invoice.updated`."
    )
    system: SystemName = strawberry.field(description="The system the record lives in.")
    time: datetime = strawberry.field(description="When the read model applied the change.")
    subject: str = strawberry.field(description="The record's id in that system.")
    kind: str = strawberry.field(description="The record kind: invoice, case, order, ...")
    customer_id: strawberry.ID = strawberry.field(description="Crosswalk's customer id.")
    changed_fields: list[str] = strawberry.field(
        description="The canonical fields that changed (empty when created or deleted)."
    )
    source: DataSource = strawberry.field(description="What told the read model.")


def _event(applied: Applied, customer_id: str) -> CustomerEvent:
    change = "deleted" if applied.deleted else "created" if applied.created else "updated"
    return CustomerEvent(
        id=strawberry.ID(f"{applied.system}.{applied.kind}.{applied.id}@{applied.at:.6f}"),
        type=f"{applied.system}.{applied.kind}.{change}",
        system=applied.system,
        time=datetime.fromtimestamp(applied.at, UTC),
        subject=applied.id,
        kind=str(applied.kind),
        customer_id=strawberry.ID(customer_id),
        changed_fields=list(applied.changed_fields),
        source=DataSource[str(applied.source)],
    )


# The root type is named SubscriptionRoot: "Subscription" is the billing subscription record.
@strawberry.type(name="SubscriptionRoot", description="Live updates (graphql-transport-ws).")
class Subscription:
    @typed(
        strawberry.subscription(
            description="An operation now and after each change, until it is final "
            "(needs operation:read)."
        )
    )
    async def operation(
        self, info: Info[Any, Any], id: strawberry.ID
    ) -> AsyncGenerator[Operation, None]:
        context = require_scope(info, "operation:read")
        store = context.runtime.store
        operation_id = str(id)
        async with store.watch_operation(operation_id) as watch:
            current = await load_operation(info, operation_id)
            if current is None:
                raise CodedError(ErrorCode.NOT_FOUND, f"No operation {operation_id!r}.")
            yield current
            last = _fingerprint(current)
            while current.status.name not in _FINAL:
                with anyio.move_on_after(POLL_SECONDS):
                    await watch.__anext__()
                fresh = await load_operation(info, operation_id)
                if fresh is None:
                    return
                current = fresh
                if _fingerprint(current) != last:
                    last = _fingerprint(current)
                    yield current

    @typed(
        strawberry.subscription(
            description="Each change the read model applies to this customer's records in "
            "any system, as it is applied (needs customer:read). Runs until the client "
            "stops it."
        )
    )
    async def customer_events(
        self, info: Info[Any, Any], customer_id: strawberry.ID
    ) -> AsyncGenerator[CustomerEvent, None]:
        context = require_scope(info, "customer:read")
        model: ReadModel | None = getattr(context.runtime, "read_model", None)
        if not isinstance(model, ReadModel):
            raise CodedError(
                ErrorCode.SYSTEM_UNAVAILABLE, "This gateway runs without a read model."
            )
        xref = await resolve_customer(context, str(customer_id))
        ids = xref.ids()
        wanted = [(system, native) for system, native in ids.items() if isinstance(system, System)]
        async with model.watch(wanted) as changes:
            async for applied in changes:
                yield _event(applied, xref.canonical_id)


def _fingerprint(operation: Operation) -> tuple[object, ...]:
    return (
        operation.status,
        operation.reason,
        tuple((s.name, s.status, s.attempts) for s in operation.steps),
    )
