"""The billing connector's reads against the real billing sandbox: retrieval, scans, paging and
search.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from actors.billing import form_encode, paging, search_quote
from actors.errors import (
    Rejected,
)
from actors.messages import (
    FindCustomerByXRef,
    FindCustomers,
    GetCustomers,
    GetInvoices,
    GetSubscriptions,
    ListCustomers,
    Page,
)
from canonical import Customer, Invoice, Subscription, System, XRef
from tests.actors.billing.helpers import CUSTOMERS, DEMO, KEY, rig

pytestmark = pytest.mark.anyio


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
