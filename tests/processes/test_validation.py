"""Canonical validation: each bad field named, nothing written, nothing queued."""

from __future__ import annotations

import pytest

from canonical import System
from gateway.governance.reference import ReferenceData
from gateway.processes.context import Caller
from gateway.processes.errors import ValidationFailed
from gateway.processes.write_path import WritePath
from gateway.store import MessageStatus, Store
from sandbox.demo import generate
from tests.processes.fakes import FakeSystems, World

pytestmark = pytest.mark.anyio

WIDGET = Caller("demo-widget", "crm")
GOOD = {
    "name": "Nordwind Logistics GmbH",
    "taxId": "DE123456789",
    "country": "DE",
    "paymentTerms": "NT30",
}


def test_reference_accepts_the_demo_world(reference: ReferenceData) -> None:
    demo = generate(300)
    for company in demo.companies:
        country = reference.countries[company.country]
        assert country.tax_id.fullmatch(company.tax_id), company.tax_id
        assert any(company.name.endswith(" " + form) for form in country.legal_forms)
        assert company.payment_terms in reference.payment_terms
    for product in demo.companies[0].opportunities[0].products:
        assert product in reference.products
    from sandbox.demo import PRODUCTS

    for p in PRODUCTS:
        assert reference.products[p.code].material == p.material
        assert reference.products[p.code].price == p.price


async def assert_nothing_written(store: Store) -> None:
    assert (await store.list_operations()).items == ()
    status = await store.outbox_status()
    assert all(status.total(s) == 0 for s in MessageStatus)
    assert await store.get_idempotency("demo-widget", "k1") is None


async def test_onboarding_names_every_bad_field(
    store: Store, systems: FakeSystems, reference: ReferenceData
) -> None:
    write = WritePath(store, systems, reference)
    bad = {
        "name": "Nordwind Logistics",  # no legal form
        "taxId": "DE12",
        "country": "DE",
        "paymentTerms": "NT99",
        "currency": "USD",
        "creditStatus": "good",  # owned by the ERP
    }
    with pytest.raises(ValidationFailed) as caught:
        await write.submit(
            "onboardCustomer", bad, caller=WIDGET, idempotency_key="k1", correlation_id="c"
        )
    fields = {p.field: p.reason for p in caught.value.problems}
    assert set(fields) == {"name", "taxId", "paymentTerms", "currency", "creditStatus"}
    assert "DE123456789" in fields["taxId"]
    assert "owned by erp" in fields["creditStatus"]
    await assert_nothing_written(store)
    assert systems.world.calls == []


async def test_unknown_country_and_missing_fields(
    store: Store, systems: FakeSystems, reference: ReferenceData
) -> None:
    write = WritePath(store, systems, reference)
    with pytest.raises(ValidationFailed) as caught:
        await write.submit(
            "onboardCustomer",
            {"name": "X AG", "country": "XX"},
            caller=WIDGET,
            idempotency_key="k1",
            correlation_id="c",
        )
    assert {p.field for p in caught.value.problems} == {"country", "taxId", "paymentTerms"}
    await assert_nothing_written(store)


async def test_close_opportunity_refusals(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    write = WritePath(store, systems, reference)
    world.add_opportunity("006A", "1000001", closed=True)
    world.add_opportunity("006B", "1000002")
    cases = [
        ({"opportunityId": "006NOPE"}, {"opportunityId"}),
        ({"opportunityId": "006A"}, {"opportunityId"}),
        (
            {
                "opportunityId": "006B",
                "lines": [
                    {"product": "CW-NOPE", "quantity": 1},
                    {"product": "CW-CORE", "quantity": 0},
                ],
            },
            {"lines[0].product", "lines[1].quantity"},
        ),
        ({"opportunityId": "006B", "paymentTerms": "NT30"}, {"paymentTerms"}),  # ERP-owned
        ({"opportunityId": "006B", "paymentTerms": "NT99"}, {"paymentTerms"}),
    ]
    for data, expected in cases:
        with pytest.raises(ValidationFailed) as caught:
            await write.submit(
                "closeOpportunity", data, caller=WIDGET, idempotency_key="k1", correlation_id="c"
            )
        assert {p.field for p in caught.value.problems} == expected, data
    await assert_nothing_written(store)


async def test_customer_that_does_not_exist(
    store: Store, systems: FakeSystems, reference: ReferenceData
) -> None:
    write = WritePath(store, systems, reference)
    for customer in ("erp:9999999", "cw_nope", "crm:001NOPE"):
        with pytest.raises(ValidationFailed) as caught:
            await write.submit(
                "openCase",
                {"customerId": customer, "subject": "Help", "description": "Broken"},
                caller=WIDGET,
                idempotency_key="k1",
                correlation_id="c",
            )
        assert [p.field for p in caught.value.problems] == ["customerId"]
    await assert_nothing_written(store)


async def test_customer_without_a_billing_record(
    store: Store, systems: FakeSystems, world: World, reference: ReferenceData
) -> None:
    del world.customers[System.BILLING]["cus_1000002"]
    world.add_opportunity("006C", "1000002")
    write = WritePath(store, systems, reference)
    with pytest.raises(ValidationFailed) as caught:
        await write.submit(
            "closeOpportunity",
            {"opportunityId": "006C"},
            caller=WIDGET,
            idempotency_key="k1",
            correlation_id="c",
        )
    assert "onboardCustomer" in caught.value.problems[0].reason
    await assert_nothing_written(store)


async def test_an_operator_client_speaking_for_no_system_is_not_limited_by_ownership(
    store: Store, systems: FakeSystems, reference: ReferenceData
) -> None:
    write = WritePath(store, systems, reference)
    view = await write.submit(
        "onboardCustomer",
        {**GOOD, "creditStatus": "good"},  # owned by the ERP: refused for a CRM widget
        caller=Caller("demo-ops", None),
        idempotency_key="k1",
        correlation_id="c",
    )
    assert view.id
