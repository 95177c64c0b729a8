"""The chaos tests' world: the four real sandbox systems on loopback (served by
tests/support/sandboxes.py, their own rate limits lifted), and helpers to drive them.

    sandboxes = await stack.enter_async_context(
        serve_sandboxes(tmp_dir, customers=CUSTOMERS, lifted=True)
    )  # once per package
    world = World(sandboxes, demo)
    async with world.systems(System.CRM, workers=1) as systems:  # real connectors, fresh actors
        await world[System.CRM].chaos(outage=True)
        ...

Only the system under test gets the test's policy changes; the other three keep the
shipped policy (rates lifted for tests, pings off) so they can show they keep serving.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio

from actors import SystemActor, Systems
from actors.messages import GetCustomers, Message, Priority
from canonical import System
from gateway.governance.systems import SystemsPolicy
from sandbox.demo import DemoData, generate, sf_id
from tests.support.sandboxes import LIFTED, Sandbox, systems_policy, urls

CUSTOMERS = 20


@dataclass
class World:
    sandboxes: dict[System, Sandbox]
    demo: DemoData = dataclasses.field(default_factory=lambda: generate(CUSTOMERS))

    def __getitem__(self, system: System) -> Sandbox:
        return self.sandboxes[system]

    def others(self, system: System) -> list[System]:
        return [s for s in System if s is not system]

    def ids(self, system: System) -> tuple[str, ...]:
        """Native ids of the seeded customers in ``system``."""
        companies = self.demo.companies
        match system:
            case System.ERP:
                return tuple(c.bp for c in companies)
            case System.BILLING:
                return tuple(c.billing_id for c in companies)
            case System.CRM:
                return tuple(c.crm_id for c in companies)
            case System.SUPPORT:
                return tuple(str(c.support_id) for c in companies if c.in_support)
        raise AssertionError(system)

    def missing_ids(self, system: System, n: int) -> tuple[str, ...]:
        """Well-formed native ids no customer has: each read of one is one vendor call."""
        match system:
            case System.ERP:
                return tuple(str(1_000_000 + 500 + i) for i in range(n))
            case System.BILLING:
                return tuple(f"cus_Missing{i:08d}" for i in range(n))
            case System.CRM:
                return tuple(sf_id("001", 90_000 + i) for i in range(n))
            case System.SUPPORT:
                return tuple(str(360000100000 + 500 + i) for i in range(n))
        raise AssertionError(system)

    def reads(self, system: System, n: int) -> list[GetCustomers]:
        """``n`` distinct one-customer reads (so none is coalesced), each one vendor call."""
        ids = self.ids(system)[:n]
        ids += self.missing_ids(system, n - len(ids))
        return [GetCustomers((i,)) for i in ids]

    def policy(self, changes: Mapping[System, Mapping[str, Any]] | None = None) -> SystemsPolicy:
        """The shipped policy pointed at the sandboxes, rates lifted, no pings; ``changes``
        gives SystemPolicy fields to replace, per system.
        """
        return systems_policy(
            urls(self.sandboxes), rate=float(LIFTED), timeout=5.0, per_system=changes
        )

    @asynccontextmanager
    async def systems(self, target: System | None = None, **changes: Any) -> AsyncIterator[Systems]:
        """All four actors with their real connectors; ``changes`` apply to ``target``."""
        async with Systems(self.policy({target: changes} if target else None)) as systems:
            yield systems

    async def assert_serving(self, systems: Systems, among: Iterable[System]) -> None:
        """Each system in ``among`` answers a three-customer read in full, concurrently."""
        answers: dict[System, Any] = {}

        async def read(system: System) -> None:
            ids = self.ids(system)[:3]
            answers[system] = (
                ids,
                await systems[system].ask(GetCustomers(ids), priority=Priority.INTERACTIVE),
            )

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                for system in among:
                    tg.start_soon(read, system)
        for system, (ids, answer) in answers.items():
            assert set(answer) == set(ids), (system, answer)
            assert systems[system].breaker_state == "closed"


async def ask_all(
    actor: SystemActor,
    reads: Sequence[Message],
    *,
    priority: Priority = Priority.INTERACTIVE,
    timeout: float = 5.0,  # noqa: ASYNC109 - the asks' own deadline, passed on
) -> list[Any]:
    """Ask every read at once; answers or errors, in the order of ``reads``."""
    results: list[Any] = [None] * len(reads)

    async def one(index: int) -> None:
        results[index] = await outcome(actor.ask(reads[index], priority=priority, timeout=timeout))

    with anyio.fail_after(timeout + 5):
        async with anyio.create_task_group() as tg:
            for index in range(len(reads)):
                tg.start_soon(one, index)
    return results


async def outcome(call: Awaitable[Any]) -> Any:
    """The call's answer, or the exception it raised (so many asks can be gathered)."""
    try:
        return await call
    except Exception as exc:
        return exc


async def until(condition: Callable[[], bool], *, within: float = 5.0) -> None:
    """Wait for a condition nothing signals (actor counters, the clock), with a deadline."""
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - these counters have no event to wait on
            await anyio.sleep(0.002)


async def until_time(moment: float, *, within: float = 5.0) -> None:
    """Wait until ``anyio.current_time()`` reaches ``moment`` (a time the breaker named)."""
    with anyio.fail_after(within):
        await anyio.sleep(max(0.0, moment - anyio.current_time()))
