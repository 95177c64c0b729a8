"""Helpers shared by the write-path tests: run a dispatcher, wait for an operation, and the
caller, statuses and onboarding input the saga tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Container
from contextlib import asynccontextmanager
from typing import Any

import anyio

from gateway.governance.outbox import DispatchPolicy
from gateway.processes.context import Caller
from gateway.processes.dispatcher import Dispatcher
from gateway.processes.views import OperationView
from gateway.processes.write_path import WritePath
from gateway.store import Operation, OperationStatus, Store

WIDGET = Caller("demo-widget", "crm")
DONE = (OperationStatus.SUCCEEDED,)
STUCK = (OperationStatus.NEEDS_ATTENTION,)
ONBOARD = {
    "name": "Nordwind Logistics GmbH",
    "taxId": "DE 123 456 789",
    "country": "DE",
    "paymentTerms": "NT30",
}


async def close_opportunity(
    write: WritePath, opportunity: str, *, key: str, correlation: str = "c"
) -> OperationView:
    """Submit ``closeOpportunity`` for ``opportunity`` as the widget client."""
    return await write.submit(
        "closeOpportunity",
        {"opportunityId": opportunity},
        caller=WIDGET,
        idempotency_key=key,
        correlation_id=correlation,
    )


FAST = DispatchPolicy(
    workers=8,
    lease_seconds=5.0,
    delivery_timeout=2.0,
    max_attempts=4,
    backoff_base=0.01,
    backoff_cap=0.05,
    defer_seconds=0.05,
    poll_interval=0.05,
    drain_seconds=2.0,
)


@asynccontextmanager
async def dispatching(
    store: Store, systems: Any, policy: DispatchPolicy = FAST, flows: Any = None
) -> AsyncIterator[Dispatcher]:
    dispatcher = Dispatcher(store, systems, policy=policy, flows=flows)
    async with anyio.create_task_group() as tg:
        await tg.start(dispatcher.run)
        try:
            yield dispatcher
        finally:
            dispatcher.stop()


async def wait_for(
    store: Store,
    operation_id: str,
    statuses: Container[OperationStatus] = (OperationStatus.SUCCEEDED,),
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 - a test's bound
) -> Operation:
    """The operation once its status is in ``statuses`` (waits on the store's watcher)."""
    with anyio.fail_after(timeout):
        async with store.watch_operation(operation_id) as watch:
            current = await store.get_operation(operation_id)
            assert current is not None, f"no operation {operation_id}"
            while current.status not in statuses:
                current = await watch.__anext__()
            return current


async def wait_until(
    condition: Callable[[], bool],
    what: str,
    *,
    timeout: float = 20.0,  # noqa: ASYNC109 - a test's bound
    every: float = 0.02,
) -> None:
    """Check ``condition`` every ``every`` seconds until it holds (for state with no event,
    such as an actor's breaker); fail naming ``what`` after ``timeout``."""
    deadline = anyio.current_time() + timeout
    for _ in range(int(timeout / every) + 1):
        if condition():
            return
        if anyio.current_time() > deadline:
            break
        await anyio.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
