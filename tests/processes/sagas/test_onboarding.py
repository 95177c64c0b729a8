"""The onboarding saga (onboardCustomer) against fake actors: every step in order, the
registry linked, and acceptance while the ERP cannot answer."""

from __future__ import annotations

import pytest

from actors import messages as m
from actors.errors import SystemUnavailable
from actors.messages import Priority
from canonical import System
from gateway.governance.reference import ReferenceData
from gateway.processes.write_path import WritePath
from gateway.store import Store
from tests.processes.fakes import FakeSystems, World
from tests.processes.helpers import DONE, ONBOARD, WIDGET, dispatching, wait_for

pytestmark = pytest.mark.anyio


async def test_onboarding_runs_every_step_and_links_the_registry(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    write = WritePath(store, systems, reference)
    view = await write.submit(
        "onboardCustomer", ONBOARD, caller=WIDGET, idempotency_key="k1", correlation_id="corr-1"
    )
    assert view.status == "PENDING"
    assert [s.name for s in view.steps] == [
        "erp_partner",
        "crm_account",
        "billing_customer",
        "support_org",
    ]
    async with dispatching(store, systems):
        done = await wait_for(store, view.id, DONE)
    # validation first asks the ERP whether the company is already there (two reads)
    reads = [(s, type(msg)) for s, msg in world.calls if not isinstance(msg, m.Write)]
    assert reads == [(System.ERP, m.FindCustomersByTaxId), (System.ERP, m.FindCustomers)]
    order = [s for s, msg in world.calls if isinstance(msg, m.Write)]
    assert order == [System.ERP, System.CRM, System.BILLING, System.SUPPORT]
    erp = systems.actors[System.ERP].priorities
    assert erp[:2] == [Priority.INTERACTIVE, Priority.INTERACTIVE]
    writes = erp[2:] + [
        p for s, a in systems.actors.items() if s is not System.ERP for p in a.priorities
    ]
    assert all(p is Priority.TRANSACTIONAL for p in writes)
    xref = await store.get_xref(done.aggregate_key)
    assert xref is not None
    assert None not in (xref.erp, xref.crm, xref.billing, xref.support)
    keys = [msg.idempotency_key for _, msg in world.calls if isinstance(msg, m.Write)]
    assert keys == [
        f"{view.id}.{step}"
        for step in ("erp_partner", "crm_account", "billing_customer", "support_org")
    ]
    erp_call = next(msg for _, msg in world.calls if isinstance(msg, m.Write))
    assert isinstance(erp_call, m.EnsureCustomer)
    assert erp_call.customer.tax_id == "DE123456789"
    audit = await store.audit_trace(["corr-1"])
    assert [a.action for a in audit] == ["mutation.onboardCustomer"] + ["saga.step"] * 4
    assert [(a.detail["step"], a.detail["status"]) for a in audit[1:]] == [
        (step, "SUCCEEDED")
        for step in ("erp_partner", "crm_account", "billing_customer", "support_org")
    ]
    assert {a.actor for a in audit} == {audit[0].actor}


async def test_onboarding_while_the_erp_cannot_answer_is_accepted_unchecked(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    # writes are accepted while a system is down and delivered later: the duplicate
    # check needs the ERP, so without it the onboarding goes ahead (and says so in the log)
    systems[System.ERP].fail(
        lambda msg: SystemUnavailable("erp", "down") if not isinstance(msg, m.Write) else None,
        times=2,
    )
    write = WritePath(store, systems, reference)
    view = await write.submit(
        "onboardCustomer", ONBOARD, caller=WIDGET, idempotency_key="k", correlation_id="c"
    )
    assert view.status == "PENDING"
