"""``Systems``: the four actors opened together from one policy."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest

import actors
from actors import DEFAULT_CONNECTORS, Systems
from actors.connector import Endpoint
from actors.errors import ActorStopped
from actors.messages import GetCustomers, Priority
from canonical import System
from gateway.governance.systems import load_systems_policy
from tests.actors.fakes import FakeConnector

pytestmark = pytest.mark.anyio

SHIPPED = Path(__file__).parents[2] / "policies" / "systems.toml"


async def test_systems_open_all_four_and_route_by_system() -> None:
    policy = load_systems_policy(SHIPPED, environ={})
    built: dict[System, tuple[Endpoint, FakeConnector]] = {}

    def factory(system: System):  # type: ignore[no-untyped-def]
        def build(endpoint: Endpoint) -> FakeConnector:
            connector = FakeConnector(system=system)
            built[system] = (endpoint, connector)
            return connector

        return build

    baseline = len(asyncio.all_tasks())
    async with Systems(policy, {s: factory(s) for s in System}) as systems:
        assert {a.system for a in systems} == {"erp", "billing", "crm", "support"}
        message = GetCustomers(("cus_1",))
        answer = await systems[System.BILLING].ask(message, priority=Priority.INTERACTIVE)
        assert answer == ("answer", message)
        assert built[System.BILLING][1].hits[message] == 1
        assert built[System.ERP][1].total == 0
        assert built[System.CRM][0].base_url == "http://127.0.0.1:8103"
        assert {s.system for s in systems.states()} == {"erp", "billing", "crm", "support"}
        assert len(systems.snapshots()) == 4
        erp = systems[System.ERP]
    assert all(connector.closed for _, connector in built.values())
    assert len(asyncio.all_tasks()) == baseline
    with pytest.raises(ActorStopped):
        await erp.ask(GetCustomers(("1",)), priority=Priority.INTERACTIVE)


async def test_systems_leave_the_garbage_collector_to_the_process() -> None:
    # the launcher tunes the collector (crosswalk.gc_settings); a library entered by tests,
    # scripts and benchmarks must not change a process-wide setting
    policy = load_systems_policy(SHIPPED, environ={})
    before = gc.get_threshold()
    factories = {s: (lambda endpoint, s=s: FakeConnector(system=s)) for s in System}
    async with Systems(policy, factories):
        assert gc.get_threshold() == before
    assert gc.get_threshold() == before


def test_default_connectors_are_named_not_imported() -> None:
    assert DEFAULT_CONNECTORS[System.ERP] == "actors.erp:ErpConnector"
    assert DEFAULT_CONNECTORS[System.SUPPORT] == "actors.support:SupportConnector"


def test_public_names_are_sorted_and_complete() -> None:
    # the order ruff keeps: CONSTANTS first, then the rest alphabetically
    assert actors.__all__ == sorted(actors.__all__, key=lambda n: (not n.isupper(), n))
    for name in actors.__all__:
        assert getattr(actors, name) is not None
    from actors import fleet, system_actor

    assert set(system_actor.__all__) | set(fleet.__all__) <= set(actors.__all__)
