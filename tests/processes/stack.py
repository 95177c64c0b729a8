"""The real thing in one test process: the loopback sandbox stack (tests/support/stack.py:
four sandbox apps on loopback with their own rate limits lifted, the four actors with
their real connectors, a SQLite store in tmp_path), plus the write path and the
dispatcher.

    async with sandbox_stack(tmp_path, customers=20) as stack:
        view = await stack.write.submit("closeOpportunity", {...}, ...)
        await wait_for(stack.store, view.id)
        stack.demo   # the demo world the sandboxes were seeded with
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup

from canonical import System
from gateway.governance.outbox import DispatchPolicy
from gateway.governance.reference import load_reference
from gateway.processes.dispatcher import Dispatcher
from gateway.processes.write_path import WritePath
from sandbox.demo import DemoData, generate
from tests.support import stack as loopback
from tests.support.paths import POLICIES

#: policy for tests: quick retries and defers, short leases
TEST_DISPATCH = DispatchPolicy(
    workers=16,
    lease_seconds=10.0,
    delivery_timeout=5.0,
    max_attempts=6,
    backoff_base=0.05,
    backoff_cap=0.5,
    defer_seconds=0.2,
    poll_interval=0.1,
    drain_seconds=5.0,
)

#: the actors' rate for these tests (calls per second, and as many in a burst)
TEST_RATE = 500.0


@dataclass
class Stack(loopback.SandboxStack):
    write: WritePath
    dispatcher: Dispatcher
    demo: DemoData
    task_group: TaskGroup

    async def start_dispatcher(self) -> None:
        await self.task_group.start(self.dispatcher.run)


@asynccontextmanager
async def sandbox_stack(
    tmp_path: Path,
    *,
    customers: int = 20,
    dispatch: DispatchPolicy = TEST_DISPATCH,
    run_dispatcher: bool = True,
    **overrides: Any,
) -> AsyncIterator[Stack]:
    """``overrides``: per system name (``billing={"breaker": ...}``), SystemPolicy fields."""
    per_system = {System(name): fields for name, fields in overrides.items()}
    async with loopback.sandbox_stack(
        tmp_path, customers=customers, lifted=True, rate=TEST_RATE, per_system=per_system
    ) as base:
        reference = load_reference(POLICIES / "reference.toml")
        write = WritePath(base.store, base.systems, reference)
        dispatcher = Dispatcher(base.store, base.systems, policy=dispatch)
        async with anyio.create_task_group() as tg:
            running = Stack(
                base.sandboxes, base.store, base.systems, write, dispatcher, generate(customers), tg
            )
            if run_dispatcher:
                await running.start_dispatcher()
            try:
                yield running
            finally:
                dispatcher.stop()
