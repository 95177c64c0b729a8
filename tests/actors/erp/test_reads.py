"""The ERP connector's reads against the real ERP sandbox: canonical records, batching, paging and
literals.
"""

from __future__ import annotations

import httpx
import pytest

from actors.erp import or_chunks
from actors.errors import (
    NotFound,
    Rejected,
)
from actors.messages import (
    FindCustomerByXRef,
    FindCustomers,
    GetBillingDocument,
    GetBillingDocuments,
    GetCustomers,
    GetOrders,
    ListCustomers,
    Page,
)
from canonical import Customer, Invoice, Order, System
from tests.actors.erp.helpers import BP, delta, environment

pytestmark = pytest.mark.anyio


BP_SET = f"GET {BP}/A_BusinessPartner"


async def test_reads_translate_to_canonical_records(tmp_path):
    async with environment(tmp_path) as env:
        assert await env.erp.ping() > 0

        customers = await env.erp.handle(GetCustomers(("1000001", "1000004", "9999999")))
        assert set(customers) == {"1000001", "1000004"}
        c = customers["1000004"]
        assert isinstance(c, Customer)
        assert c.system is System.ERP
        assert c.xref.erp == "1000004"
        assert c.xref.crm is not None
        assert c.xref.crm.startswith("001")
        assert c.name == c.legal_name
        assert c.country is not None
        assert c.tax_id is not None
        assert c.payment_terms is not None
        assert c.payment_terms.startswith("NT")
        assert c.currency in {"EUR", "GBP", "USD", "SEK"}
        assert c.credit_status in {"ok", "blocked"}
        assert c.updated_at is not None

        word = c.name.split()[0][1:5].upper()
        found = await env.erp.handle(FindCustomers(word, limit=50))
        assert c in found
        assert all(word.lower() in f.name.lower() for f in found)
        assert len(await env.erp.handle(FindCustomers("", limit=3))) == 3

        assert await env.erp.handle(FindCustomerByXRef("1000004")) == c
        assert await env.erp.handle(FindCustomerByXRef("1999999")) is None
        assert await env.erp.handle(FindCustomerByXRef("x'y")) is None

        orders = await env.erp.handle(GetOrders(("1000001", "1000004", "9999999")))
        assert set(orders) <= {"1000001", "1000004"}
        order = next(iter(orders.values()))[0]
        assert isinstance(order, Order)
        assert order.items
        assert order.net_amount == sum(i.net_amount or 0 for i in order.items)
        assert order.purchase_order is not None
        assert order.purchase_order.startswith("006")
        assert order.currency == "EUR"

        documents = await env.erp.handle(GetBillingDocuments(("1000001", "1000004")))
        invoice = next(iter(documents.values()))[0]
        assert isinstance(invoice, Invoice)
        assert invoice.erp_document == invoice.id
        assert invoice.billing_invoice is not None
        assert invoice.billing_invoice.startswith("in_")
        assert invoice.posted == (invoice.status == "posted")
        assert invoice.tax is not None
        assert invoice.total > invoice.tax
        assert await env.erp.handle(GetBillingDocument(invoice.id)) == invoice
        with pytest.raises(NotFound):
            await env.erp.handle(GetBillingDocument("12345"))


async def test_batched_reads_use_one_or_filter_per_chunk(tmp_path):
    async with environment(tmp_path) as env:
        ids = tuple(str(1000000 + n) for n in range(20))
        before = await env.routes()
        customers = await env.erp.handle(GetCustomers(ids))
        orders = await env.erp.handle(GetOrders(ids))
        documents = await env.erp.handle(GetBillingDocuments(ids))
        after = await env.routes()
        assert len(customers) == 20
        assert sum(len(v) for v in orders.values()) >= 20
        assert documents
        assert delta(before, after, BP_SET) == 1
        assert delta(before, after, "GET /sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder") == 1
        billing = "GET /sap/opu/odata/sap/API_BILLING_DOCUMENT_SRV/A_BillingDocument"
        assert delta(before, after, billing) == 1

        # 900 keys do not fit one URL: a few chunks, each well under the budget
        many = ids + tuple(f"X{n:09d}" for n in range(880))
        chunks = or_chunks("BusinessPartner", many)
        assert len(chunks) >= 2
        assert all(len(httpx.QueryParams({"$filter": c}).__str__()) < 6500 for c in chunks)
        before = await env.routes()
        assert len(await env.erp.handle(GetCustomers(many))) == 20
        after = await env.routes()
        # the chunks' first pages go out in one $batch (tests/actors/erp/test_batched_reads.py)
        assert delta(before, after, BP_SET) == 0
        assert delta(before, after, f"POST {BP}/$batch") == 1


async def test_list_customers_walks_next_links_and_cursor_pages(tmp_path):
    async with environment(tmp_path, page_size=5) as env:
        before = await env.routes()
        page = await env.erp.handle(ListCustomers(limit=12))
        after = await env.routes()
        assert isinstance(page, Page)
        assert [c.id for c in page.items] == [str(1000000 + n) for n in range(12)]
        assert page.next_cursor == "12"
        assert delta(before, after, BP_SET) == 3  # pages of 5, 5, 2 through __next

        rest = await env.erp.handle(ListCustomers(cursor=page.next_cursor, limit=12))
        assert [c.id for c in rest.items] == [str(1000000 + n) for n in range(12, 20)]
        assert rest.next_cursor is None
        with pytest.raises(Rejected):
            await env.erp.handle(ListCustomers(cursor="abc"))


async def test_values_are_escaped_into_odata_literals(tmp_path):
    async with environment(tmp_path) as env:
        sneaky = "1000001' or BusinessPartner ne '"
        assert await env.erp.handle(GetCustomers((sneaky,))) == {}
        assert await env.erp.handle(FindCustomers("o'brien")) == ()
        assert await env.erp.handle(GetOrders(("x') or (SoldToParty ne 'y",))) == {}
