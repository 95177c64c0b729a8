"""All four system actors, opened together from ``policies/systems.toml``.

::

    policy = load_systems_policy("policies/systems.toml")
    async with Systems(policy) as systems:
        erp = systems[System.ERP]
        customers = await erp.ask(GetCustomers(("1000042",)), priority=Priority.INTERACTIVE)

``on_call`` is told about every vendor HTTP call (``actors.calls.VendorCall``): the
gateway's audit trail hangs on it. Connectors are built by factories
(``System -> callable(Endpoint) -> Connector``); the defaults import
``actors.erp.ErpConnector`` and its siblings only when called, and tests pass their own.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import cast

import anyio
from anyio.abc import TaskStatus

from actors._stats import StatsSnapshot, SystemState
from actors._tasks import RunsInOwnGroup
from actors.calls import CallObserver
from actors.connector import Connector, Endpoint
from actors.policy import SystemsPolicy
from actors.system_actor import SystemActor
from canonical import System

__all__ = ["DEFAULT_CONNECTORS", "ConnectorFactory", "Systems"]

ConnectorFactory = Callable[[Endpoint], Connector]

#: where each system's connector class lives: imported on first use
DEFAULT_CONNECTORS: Mapping[System, str] = MappingProxyType(
    {
        System.ERP: "actors.erp:ErpConnector",
        System.BILLING: "actors.billing:BillingConnector",
        System.CRM: "actors.crm:CrmConnector",
        System.SUPPORT: "actors.support:SupportConnector",
    }
)


def _default_factory(system: System) -> ConnectorFactory:
    def build(endpoint: Endpoint) -> Connector:
        module, _, name = DEFAULT_CONNECTORS[system].partition(":")
        cls = getattr(importlib.import_module(module), name)
        return cast(Connector, cls(endpoint))

    return build


class Systems(RunsInOwnGroup):
    """The four system actors in one task group; an async context manager.

    Entering opens every connector and starts every actor (all or nothing); leaving stops
    them all, failing their pending asks with ``ActorStopped``.
    """

    def __init__(
        self,
        policy: SystemsPolicy,
        factories: Mapping[System, ConnectorFactory] | None = None,
        *,
        on_call: CallObserver | None = None,
    ) -> None:
        self.policy = policy
        #: told about every vendor HTTP call any connector makes (``actors.calls``)
        self.on_call = on_call
        given = dict(factories or {})
        self._factories = {s: given.get(s) or _default_factory(s) for s in policy.systems}
        self._actors: dict[System, SystemActor] = {}
        self._share = 1.0

    def __getitem__(self, system: System) -> SystemActor:
        try:
            return self._actors[system]
        except KeyError:
            raise KeyError(
                f"No {system} actor is running: enter 'async with Systems(...)' first."
            ) from None

    def __iter__(self) -> Iterator[SystemActor]:
        return iter(self._actors.values())

    def states(self) -> list[SystemState]:
        """Health, breaker, queue depth and latency of each system, for ``Query.systems``."""
        return [actor.state for actor in self._actors.values()]

    def snapshots(self) -> list[StatsSnapshot]:
        return [actor.snapshot() for actor in self._actors.values()]

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run every actor until ``stop()``; ready once all four are serving."""
        actors = {
            system: SystemActor(
                self._factories[system](policy.endpoint()), policy, on_call=self.on_call
            )
            for system, policy in self.policy.systems.items()
        }
        for actor in actors.values():
            actor.set_rate_share(self._share)
        try:
            async with anyio.create_task_group() as tg:
                for system, actor in actors.items():
                    await tg.start(actor.run, name=f"{system}-actor")
                    self._actors[system] = actor
                task_status.started()
        finally:
            self._actors.clear()

    def set_rate_share(self, share: float) -> None:
        """Every system spends ``share`` of its policy rate (several replicas: one quota)."""
        self._share = share
        for actor in self._actors.values():
            actor.set_rate_share(share)

    def stop(self) -> None:
        for actor in self._actors.values():
            actor.stop()
