"""The chaos tests' world: the four real sandbox systems on loopback, and helpers to drive them.

    sandboxes = await stack.enter_async_context(serve_sandboxes(tmp_dir))  # once per package
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
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx

from actors import SystemActor, Systems
from actors.messages import GetCustomers, Message, Priority
from canonical import System
from gateway.governance.systems import ENV_URLS, SystemsPolicy, load_systems_policy
from sandbox import billing, crm, erp, support
from sandbox.app import SandboxConfig
from sandbox.demo import DemoData, generate, sf_id
from tests.servers import serve
from tests.support.paths import ROOT

CUSTOMERS = 20

# The sandboxes' own built-in rate limits are lifted so that only the chaos switches (and
# the actor's policy) decide what the tests see.
_APPS: dict[System, Callable[[SandboxConfig], Any]] = {
    System.ERP: lambda c: erp.create_app(c, rate=10_000.0, burst=10_000),
    System.BILLING: lambda c: billing.create_app(c, rate_per_second=10_000.0, rate_burst=10_000.0),
    System.CRM: lambda c: crm.create_app(c, per_second=10_000.0, burst=10_000),
    System.SUPPORT: lambda c: support.create_app(c, rate_limit=1_000_000),
}


@dataclass
class Sandbox:
    """One served sandbox system and its control endpoints (``/_sandbox/*``)."""

    system: System
    url: str
    http: httpx.AsyncClient

    async def chaos(self, **settings: object) -> None:
        answer = await self.http.put(f"{self.url}/_sandbox/chaos", json=settings)
        assert answer.status_code == 200, answer.text

    async def reset(self) -> None:
        answer = await self.http.post(f"{self.url}/_sandbox/reset")
        assert answer.status_code == 200, answer.text

    async def stats(self) -> dict[str, Any]:
        answer = await self.http.get(f"{self.url}/_sandbox/stats")
        assert answer.status_code == 200, answer.text
        stats: dict[str, Any] = answer.json()
        return stats

    async def requests(self) -> int:
        """Vendor calls the system has received since the last reset."""
        return int((await self.stats())["requests"])

    async def until_requests(self, count: int, *, within: float = 5.0) -> None:
        """Wait until the system has received ``count`` vendor calls since the last reset."""
        with anyio.fail_after(within):
            while await self.requests() < count:  # noqa: ASYNC110 - another process's count
                await anyio.sleep(0.005)

    async def timestamps(self) -> list[float]:
        """When each vendor call arrived (``time.monotonic``, the clock anyio uses too)."""
        return [float(t) for t in (await self.stats())["timestamps"]]


@asynccontextmanager
async def serve_sandboxes(data_dir: Path) -> AsyncIterator[dict[System, Sandbox]]:
    """All four sandbox apps on free loopback ports, data in ``data_dir``, no webhooks."""
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10.0))
        sandboxes = {}
        for system, factory in _APPS.items():
            config = SandboxConfig.for_system(
                system.value, data_dir=data_dir, gateway_url=None, customers=CUSTOMERS
            )
            url = await stack.enter_async_context(serve(factory(config)))
            sandboxes[system] = Sandbox(system, url, http)
        yield sandboxes


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
        changes = changes or {}
        environ = {ENV_URLS[s]: box.url for s, box in self.sandboxes.items()}
        shipped = load_systems_policy(ROOT / "policies" / "systems.toml", environ=environ)
        systems = {}
        for system, policy in shipped.systems.items():
            lifted = dataclasses.replace(
                policy,
                rate=dataclasses.replace(policy.rate, per_second=10_000.0, burst=10_000),
                health_interval=0.0,
                timeout=5.0,
            )
            systems[system] = dataclasses.replace(lifted, **changes.get(system, {}))
        return dataclasses.replace(shipped, systems=systems)

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
