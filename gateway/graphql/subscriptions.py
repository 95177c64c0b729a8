"""``Subscription``: follow an operation as it changes (graphql-transport-ws).

``operation(id:)`` yields the operation at once, then after every committed status or
step change, until it reaches a final status (SUCCEEDED, FAILED, COMPENSATED).
``NEEDS_ATTENTION`` is not final: a replay may still complete it. Changes committed by
this process arrive through the store's watchers at once; changes made by another
process (a CLI replay) are picked up by a poll every ``POLL_SECONDS``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import anyio
import strawberry
from strawberry.types import Info

from gateway.graphql.context import require_scope
from gateway.graphql.errors import CodedError, ErrorCode
from gateway.graphql.operations import Operation, load_operation, typed
from gateway.store import OperationStatus

__all__ = ["POLL_SECONDS", "Subscription"]

#: how often a subscription re-reads the operation in case another process changed it
POLL_SECONDS = 2.0

_FINAL = {OperationStatus.SUCCEEDED.value, OperationStatus.FAILED.value}
_FINAL.add(OperationStatus.COMPENSATED.value)


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


def _fingerprint(operation: Operation) -> tuple[object, ...]:
    return (
        operation.status,
        operation.reason,
        tuple((s.name, s.status, s.attempts) for s in operation.steps),
    )
