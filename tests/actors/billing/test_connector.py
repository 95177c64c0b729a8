"""The billing connector against the real billing sandbox (Stripe API v1) on loopback."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest

from actors.billing import BillingConnector, form_encode, paging, search_quote
from actors.billing.errors import raise_for
from actors.connector import Endpoint, Response
from actors.errors import (
    Conflict,
    MalformedResponse,
    NotFound,
    Rejected,
    SystemUnavailable,
    Throttled,
)
from actors.messages import (
    CreateCreditNote,
    CreateSubscription,
    EnsureCustomer,
    FindCustomerByXRef,
    FindCustomers,
    GetCustomers,
    GetInvoices,
    GetOrders,
    GetSubscriptions,
    ListCustomers,
    Page,
    RenewSubscription,
    UpdateCustomer,
)
from canonical import Customer, Invoice, Subscription, System, XRef
from sandbox.app import SandboxConfig
from sandbox.billing import create_app
from sandbox.demo import generate
from tests.servers import serve

pytestmark = pytest.mark.anyio

KEY = "sk_test_crosswalk"
CUSTOMERS = 20
DEMO = generate(CUSTOMERS, 42)


@dataclasses.dataclass
class Rig:
    connector: BillingConnector
    control: httpx.AsyncClient
    url: str

    async def chaos(self, **settings: Any) -> None:
        response = await self.control.put("/_sandbox/chaos", json=settings)
        assert response.status_code == 200, response.text

    async def calls(self) -> dict[str, int]:
        stats: dict[str, int] = (await self.control.get("/_sandbox/stats")).json()["by_route"]
        return stats


@asynccontextmanager
async def rig(tmp_path: Path, *, key: str = KEY) -> AsyncIterator[Rig]:
    config = SandboxConfig.for_system(
        "billing", data_dir=tmp_path, gateway_url=None, customers=CUSTOMERS
    )
    async with serve(create_app(config)) as url, httpx.AsyncClient(base_url=url) as control:
        endpoint = Endpoint(base_url=url, credentials={"api_key": key}, timeout=5.0)
        async with BillingConnector(endpoint) as connector:
            yield Rig(connector, control, url)


def _new_customer(bp: str, name: str = "Newco Logistics GmbH") -> Customer:
    return Customer(
        system=System.ERP,
        id=bp,
        name=name,
        xref=XRef(erp=bp, crm="001NEWCO000000AAQ"),
        country="DE",
        email="billing@newco.example",
    )


# ---------------------------------------------------------------- reads


async def test_get_customers_retrieves_a_few_ids_concurrently_with_a_bound(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        r.connector.fan_out = 2
        wanted = [c.billing_id for c in DEMO.companies[:5]]
        await r.chaos(latency_ms=[100, 100])
        started = time.monotonic()
        found = await r.connector.handle(GetCustomers((*wanted, wanted[0], "cus_nothing")))
        elapsed = time.monotonic() - started
        await r.chaos(latency_ms=[0, 0])
        assert set(found) == set(wanted)
        company = DEMO.companies[2]
        assert found[company.billing_id] == Customer(
            system=System.BILLING,
            id=company.billing_id,
            name=company.name,
            xref=XRef(erp=company.bp, billing=company.billing_id, crm=company.crm_id),
            country=company.country,
            currency=company.currency,
            email=company.email,
        )
        calls = await r.calls()
        retrieves = {k: v for k, v in calls.items() if k.startswith("GET /v1/customers/cus_")}
        assert len(retrieves) == 6  # each distinct id once, the repeated one not again
        assert set(retrieves.values()) == {1}
        assert "GET /v1/customers" not in calls
        # six calls of 100 ms at most two at a time: three rounds, not one, not six
        assert 0.3 <= elapsed < 0.6


async def test_get_customers_finds_many_ids_in_the_customer_list(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        wanted = [c.billing_id for c in DEMO.companies[:17]]
        found = await r.connector.handle(GetCustomers((*wanted, "cus_nothing")))
        assert set(found) == set(wanted)
        assert found[wanted[3]].name == DEMO.companies[3].name
        calls = await r.calls()
        # 21 customers fit one page of 100: the list read to its end proves cus_nothing absent
        assert calls["GET /v1/customers"] == 1
        assert not [k for k in calls if k.startswith("GET /v1/customers/cus_")]
        deleted = await r.control.delete(
            f"/v1/customers/{wanted[0]}", headers={"Authorization": f"Bearer {KEY}"}
        )
        assert deleted.status_code == 200
        again = await r.connector.handle(GetCustomers(tuple(wanted)))
        assert set(again) == set(wanted[1:])


async def test_get_customers_retrieves_what_the_scan_budget_did_not_reach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paging, "SCAN_PAGE", 4)
    async with rig(tmp_path) as r:
        wanted = [c.billing_id for c in DEMO.companies[:12]]
        found = await r.connector.handle(GetCustomers(tuple(wanted)))
        assert set(found) == set(wanted)
        calls = await r.calls()
        assert calls["GET /v1/customers"] == 2  # one page per ten ids: 12 ids, 2 pages of 4
        retrieves = [k for k in calls if k.startswith("GET /v1/customers/cus_")]
        # the newest 8 customers were on those pages; the others are retrieved one by one
        listed = (
            await r.control.get(
                "/v1/customers", params={"limit": 8}, headers={"Authorization": f"Bearer {KEY}"}
            )
        ).json()["data"]
        assert len(retrieves) == len(set(wanted) - {c["id"] for c in listed})


async def test_list_customers_pages_with_starting_after(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            page = await r.connector.handle(ListCustomers(cursor=cursor, limit=7))
            assert isinstance(page, Page)
            pages += 1
            seen.extend(c.id for c in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert pages == 3  # 21 customers, 7 a page, the last page says has_more: false
        assert len(seen) == len(set(seen)) == CUSTOMERS + len(DEMO.orphans)
        assert (await r.calls())["GET /v1/customers"] == 3


async def test_find_customers_and_by_xref_use_search(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        company = DEMO.companies[4]
        fragment = company.name.split()[0][1:6]
        found = await r.connector.handle(FindCustomers(fragment, limit=50))
        assert company.billing_id in {c.id for c in found}
        assert all(fragment.lower() in c.name.lower() for c in found)
        with pytest.raises(Rejected) as short:
            await r.connector.handle(FindCustomers("ab"))
        assert short.value.details["fields"] == ["text"]
        quoted = await r.connector.handle(FindCustomers("O'Brien \\ Sons"))
        assert quoted == ()
        by_bp = await r.connector.handle(FindCustomerByXRef(company.bp))
        assert by_bp is not None
        assert by_bp.id == company.billing_id
        assert by_bp.xref.crm == company.crm_id
        assert await r.connector.handle(FindCustomerByXRef("1899999")) is None
        orphan = DEMO.orphans[0]
        stray = await r.connector.handle(FindCustomerByXRef(orphan.erp_bp))
        assert stray is not None
        assert stray.id == orphan.id
        assert (await r.calls())["GET /v1/customers/search"] == 5


async def test_subscriptions_and_invoices_per_customer(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        companies = [c for c in DEMO.companies if c.subscriptions][:4]
        ids = tuple(c.billing_id for c in companies)
        subs = await r.connector.handle(GetSubscriptions(ids))
        assert set(subs) == set(ids)
        for company in companies:
            got = {s.id: s for s in subs[company.billing_id]}
            assert set(got) == {s.id for s in company.subscriptions}
            for demo_sub in company.subscriptions:
                sub = got[demo_sub.id]
                assert isinstance(sub, Subscription)
                assert sub.status == demo_sub.status  # canceled ones too (status=all)
                assert sub.erp_order == demo_sub.erp_order
                assert [(i.price, i.quantity) for i in sub.items] == list(demo_sub.items)
                assert sub.current_period_end == demo_sub.period_end
        invoices = await r.connector.handle(GetInvoices(ids))
        for company in companies:
            expected = {i.id: i for s in company.subscriptions for i in s.invoices}
            got_invoices = {i.id: i for i in invoices[company.billing_id]}
            assert set(got_invoices) == set(expected)
            for invoice_id, demo_invoice in expected.items():
                invoice = got_invoices[invoice_id]
                assert isinstance(invoice, Invoice)
                assert invoice.total == demo_invoice.total
                assert invoice.tax == demo_invoice.tax
                assert invoice.status == demo_invoice.status
                assert invoice.currency == company.currency
                assert invoice.billing_invoice == invoice_id
                assert invoice.erp_document == demo_invoice.erp_document
                assert invoice.due_date == demo_invoice.due.date()
        calls = await r.calls()
        assert calls["GET /v1/subscriptions"] == len(ids)
        assert calls["GET /v1/invoices"] == len(ids)


# ---------------------------------------------------------------- writes


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


# ---------------------------------------------------------------- error mapping


async def test_vendor_failures_map_to_the_actor_errors(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        read = GetCustomers((DEMO.companies[0].billing_id,))
        await r.chaos(throttle=True)
        with pytest.raises(Throttled) as throttled:
            await r.connector.handle(read)
        assert throttled.value.retry_after == 1.0
        assert throttled.value.status == 429
        await r.chaos(throttle=False, outage=True)
        with pytest.raises(SystemUnavailable):
            await r.connector.handle(ListCustomers())
        await r.chaos(outage=False, error_rate=1.0)
        with pytest.raises(SystemUnavailable) as failed:
            await r.connector.handle(ListCustomers())
        assert failed.value.retryable
        await r.chaos(error_rate=0.0, malformed_rate=1.0)
        with pytest.raises(MalformedResponse):
            await r.connector.handle(ListCustomers())
        await r.chaos(malformed_rate=0.0)
        assert await r.connector.ping() > 0

        # the same key while the first request is still being served: retry soon
        await r.chaos(latency_ms=[300, 300])
        message = CreateSubscription(
            "op-12:billing",
            DEMO.companies[9].billing_id,
            (("price_plus_monthly", 1),),
            first_delivery=True,  # no look-up first: both reach Stripe at once
        )
        outcomes: list[object] = []

        async def send() -> None:
            try:
                outcomes.append(await r.connector.handle(message))
            except Throttled as exc:
                outcomes.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(send)
            # the second goes once the sandbox holds the first (it takes the key on arrival)
            with anyio.fail_after(5):
                while "POST /v1/subscriptions" not in await r.calls():  # noqa: ASYNC110 - polls the server
                    await anyio.sleep(0.01)
            tg.start_soon(send)
        await r.chaos(latency_ms=[0, 0])
        busy = [o for o in outcomes if isinstance(o, Throttled)]
        assert len(busy) == 1
        assert busy[0].status == 409
        assert busy[0].retry_after is not None
        assert sum(isinstance(o, Subscription) for o in outcomes) == 1

        with pytest.raises(TypeError, match="GetOrders"):
            await r.connector.handle(GetOrders(("x",)))


async def test_a_wrong_key_is_unavailable_and_not_retryable(tmp_path: Path) -> None:
    async with rig(tmp_path, key="sk_test_wrong") as r:
        with pytest.raises(SystemUnavailable) as refused:
            await r.connector.handle(ListCustomers())
        assert refused.value.status == 401
        assert refused.value.retryable is False


def _answer(status: int, error: dict[str, Any], **headers: str) -> Response:
    return Response(status, headers, orjson.dumps({"error": error}))


@pytest.mark.parametrize(
    ("response", "kind", "retryable"),
    [
        (
            _answer(402, {"type": "card_error", "code": "card_declined", "message": "Declined"}),
            Rejected,
            False,
        ),
        (
            _answer(500, {"type": "api_error", "message": "x"}, **{"Stripe-Should-Retry": "false"}),
            Rejected,
            False,
        ),
        (_answer(500, {"type": "api_error", "message": "x"}), SystemUnavailable, True),
        (_answer(400, {"type": "idempotency_error", "message": "x"}), Conflict, False),
        (Response(502, {}, b"<html>bad gateway</html>"), SystemUnavailable, True),
        (Response(400, {}, b"not json"), MalformedResponse, True),
    ],
)
def test_error_answers_map_by_status_type_and_should_retry(
    response: Response, kind: type[Exception], retryable: bool
) -> None:
    with pytest.raises(kind) as raised:
        raise_for(response, "POST /v1/invoices/in_1/pay", max_retry_after=60.0)
    assert getattr(raised.value, "retryable", None) is retryable


def test_form_encoding_and_search_quoting() -> None:
    pairs = form_encode(
        {
            "customer": "cus_1",
            "items": [{"price": "price_a", "quantity": 2}],
            "metadata": {"erp_bp": "1000042", "gone": None},
            "cancel_at_period_end": False,
        }
    )
    assert pairs == [
        ("customer", "cus_1"),
        ("items[0][price]", "price_a"),
        ("items[0][quantity]", "2"),
        ("metadata[erp_bp]", "1000042"),
        ("metadata[gone]", ""),
        ("cancel_at_period_end", "false"),
    ]
    assert search_quote("O'Brien \\ Co") == "'O\\'Brien \\\\ Co'"


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
