"""The billing connector's writes against the real billing sandbox, each with one effect."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from actors.errors import (
    Conflict,
    NotFound,
    Rejected,
)
from actors.messages import (
    CreateCreditNote,
    CreateSubscription,
    EnsureCustomer,
    GetInvoices,
    GetSubscriptions,
    RenewSubscription,
    UpdateCustomer,
)
from canonical import Customer, System, XRef
from tests.actors.billing.helpers import DEMO, KEY, rig

pytestmark = pytest.mark.anyio


def _new_customer(bp: str, name: str = "Newco Logistics GmbH") -> Customer:
    return Customer(
        system=System.ERP,
        id=bp,
        name=name,
        xref=XRef(erp=bp, crm="001NEWCO000000AAQ"),
        country="DE",
        email="billing@newco.example",
    )


async def test_ensure_customer_finds_or_creates_once(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        company = DEMO.companies[1]
        existing = await r.connector.handle(
            EnsureCustomer("op-1:billing", _new_customer(company.bp, company.name), "op-1")
        )
        assert existing.id == company.billing_id
        assert "POST /v1/customers" not in await r.calls()

        message = EnsureCustomer("op-2:billing", _new_customer("1999001"), "op-2")
        created = await r.connector.handle(message)
        again = await r.connector.handle(message)
        assert again.id == created.id
        assert created.xref == XRef(erp="1999001", billing=created.id, crm="001NEWCO000000AAQ")
        assert created.country == "DE"
        assert created.email == "billing@newco.example"
        found = await r.control.get(
            "/v1/customers/search",
            params={"query": "metadata['erp_bp']:'1999001'"},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert [c["id"] for c in found.json()["data"]] == [created.id]
        assert found.json()["data"][0]["metadata"]["crosswalk_id"] == "op-2"

        # without an ERP key there is nothing to search by: the Idempotency-Key is the guard
        loose = dataclasses.replace(_new_customer("x"), xref=XRef())
        first = await r.connector.handle(EnsureCustomer("op-3:billing", loose, "op-3"))
        second = await r.connector.handle(EnsureCustomer("op-3:billing", loose, "op-3"))
        assert first.id == second.id
        assert (await r.calls())["POST /v1/customers"] == 3  # op-2 once, op-3 twice (replayed)

        bad = dataclasses.replace(_new_customer("1999002"), email="not an email")
        with pytest.raises(Rejected) as refused:
            await r.connector.handle(EnsureCustomer("op-4:billing", bad, "op-4"))
        assert refused.value.details["fields"] == ["email"]
        assert refused.value.status == 400


async def test_update_customer(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        target = DEMO.companies[0].billing_id
        updated = await r.connector.handle(
            UpdateCustomer("op-5:billing", target, {"name": "Renamed GmbH", "country": "AT"})
        )
        assert updated.name == "Renamed GmbH"
        assert updated.country == "AT"
        with pytest.raises(Rejected) as refused:
            await r.connector.handle(
                UpdateCustomer("op-6:billing", target, {"payment_terms": "NT30"})
            )
        assert refused.value.details["fields"] == ["payment_terms"]
        with pytest.raises(NotFound):
            await r.connector.handle(UpdateCustomer("op-7:billing", "cus_nothing", {"name": "x"}))


async def test_create_and_renew_subscription_have_one_effect_each(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        customer = DEMO.companies[7].billing_id
        message = CreateSubscription(
            "op-8:billing",
            customer,
            (("price_core_monthly", 2), ("price_seat_monthly", 10)),
            {"erp_order": "5009001"},
        )
        sub = await r.connector.handle(message)
        again = await r.connector.handle(message)
        assert again == sub
        assert sub.status == "active"
        assert sub.customer_id == customer
        assert sub.erp_order == "5009001"
        assert [(i.price, i.quantity) for i in sub.items] == [
            ("price_core_monthly", 2),
            ("price_seat_monthly", 10),
        ]
        subs = (await r.connector.handle(GetSubscriptions((customer,))))[customer]
        assert sum(1 for s in subs if s.erp_order == "5009001") == 1
        invoices = (await r.connector.handle(GetInvoices((customer,))))[customer]
        first_invoice = [
            i for i in invoices if i.status == "open" and i.total == Decimal("1487.50")
        ]
        assert len(first_invoice) == 1  # (2 x 500 + 10 x 25) + 19% tax, billed once

        with pytest.raises(Conflict):
            await r.connector.handle(
                dataclasses.replace(message, items=(("price_core_monthly", 3),))
            )

        renew = RenewSubscription("op-9:billing", sub.id, {"renewed_by": "op-9"})
        before = datetime.now(UTC).replace(microsecond=0)
        renewed = await r.connector.handle(renew)
        assert await r.connector.handle(renew) == renewed
        assert renewed.current_period_start is not None
        assert renewed.current_period_start >= before
        assert renewed.cancel_at_period_end is False
        invoices = (await r.connector.handle(GetInvoices((customer,))))[customer]
        assert sum(1 for i in invoices if i.total == Decimal("1487.50")) == 2  # one more period
        with pytest.raises(NotFound):
            await r.connector.handle(RenewSubscription("op-10:billing", "sub_nothing"))
        with pytest.raises(NotFound):
            await r.connector.handle(
                CreateSubscription("op-11:billing", customer, (("price_nothing", 1),))
            )


async def test_create_credit_note_has_one_effect_and_a_redelivery_finds_it(
    tmp_path: Path,
) -> None:
    invoice = next(
        inv for c in DEMO.companies for s in c.subscriptions for inv in s.invoices
        if inv.status == "open"
    )  # fmt: skip
    listing = "GET /v1/credit_notes"
    creating = "POST /v1/credit_notes"
    async with rig(tmp_path) as r:
        message = CreateCreditNote(
            "op-12:credit",
            invoice.id,
            Decimal("12.50"),
            reason="order_change",
            memo="One seat fewer",
        )
        before = await r.calls()
        first = await r.connector.handle(dataclasses.replace(message, first_delivery=True))
        after = await r.calls()
        assert first.startswith("cn_")
        assert after.get(listing, 0) == before.get(listing, 0)  # a first delivery: no lookup
        assert after[creating] == before.get(creating, 0) + 1

        again = await r.connector.handle(message)  # a redelivery: lists the invoice's first
        later = await r.calls()
        assert again == first
        assert later[listing] == after.get(listing, 0) + 1
        assert later[creating] == after[creating]  # found by its key: nothing posted

        async with httpx.AsyncClient(
            base_url=r.url, headers={"Authorization": f"Bearer {KEY}"}
        ) as api:
            notes = (await api.get("/v1/credit_notes", params={"invoice": invoice.id})).json()
            assert [n["id"] for n in notes["data"]] == [first]
            note = notes["data"][0]
            assert note["amount"] == 1250
            assert note["reason"] == "order_change"
            assert note["memo"] == "One seat fewer"
            assert note["metadata"] == {"crosswalk_key": "op-12:credit"}
            stripe_invoice = (await api.get(f"/v1/invoices/{invoice.id}")).json()
            assert stripe_invoice["amount_remaining"] == int(invoice.total * 100) - 1250

        with pytest.raises(Conflict):
            await r.connector.handle(dataclasses.replace(message, amount=Decimal("13")))
        with pytest.raises(Rejected) as fraction:
            await r.connector.handle(CreateCreditNote("op-13:credit", invoice.id, Decimal("0.005")))
        assert fraction.value.details["fields"] == ["amount"]
        with pytest.raises(Rejected) as too_much:
            await r.connector.handle(
                CreateCreditNote("op-14:credit", invoice.id, invoice.total, first_delivery=True)
            )
        assert too_much.value.details["fields"] == ["amount"]
        with pytest.raises(Rejected):
            await r.connector.handle(
                CreateCreditNote("op-15:credit", "in_nothing", Decimal("1"), first_delivery=True)
            )
