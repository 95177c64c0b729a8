"""The ERP connector against the real ERP sandbox app on a loopback port."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import anyio
import httpx
import pytest

from actors.connector import Endpoint
from actors.erp import ErpConnector, or_chunks
from actors.errors import (
    Conflict,
    MalformedResponse,
    NotFound,
    Rejected,
    SystemTimeout,
    SystemUnavailable,
    Throttled,
)
from actors.messages import (
    EnsureCreditMemoRequest,
    EnsureCustomer,
    EnsureSalesOrder,
    FindCustomerByXRef,
    FindCustomers,
    GetBillingDocument,
    GetBillingDocuments,
    GetCustomers,
    GetOrders,
    GetSubscriptions,
    ListCustomers,
    Page,
    UpdateCustomer,
)
from canonical import Customer, Invoice, Order, System
from sandbox.app import SandboxConfig
from sandbox.erp import create_app
from tests.servers import serve

pytestmark = pytest.mark.anyio

BP = "/sap/opu/odata/sap/API_BUSINESS_PARTNER"
BP_SET = f"GET {BP}/A_BusinessPartner"
CSRF_FETCH = f"GET {BP}/"
CREDENTIALS = {"username": "sandbox", "password": "sandbox"}


@dataclass
class Env:
    erp: ErpConnector
    http: httpx.AsyncClient  # the test's own view of the sandbox

    async def routes(self) -> dict[str, int]:
        stats: dict[str, int] = (await self.http.get("/_sandbox/stats")).json()["by_route"]
        return dict(stats)

    async def chaos(self, **settings: Any) -> None:
        response = await self.http.put("/_sandbox/chaos", json=settings)
        assert response.status_code == 200

    async def count(self, entity_set: str, expression: str) -> int:
        response = await self.http.get(
            f"/sap/opu/odata/sap/{entity_set}/$count", params={"$filter": expression}
        )
        assert response.status_code == 200, response.text
        return int(response.text)


@asynccontextmanager
async def environment(
    tmp_path: Any,
    credentials: dict[str, str] = CREDENTIALS,
    *,
    bounds: dict[str, int] | None = None,
    **app_options: Any,
) -> AsyncIterator[Env]:
    config = SandboxConfig.for_system(
        "erp", data_dir=tmp_path, gateway_url=None, customers=20, fresh=True
    )
    async with (
        serve(create_app(config, **app_options)) as url,
        httpx.AsyncClient(base_url=url, auth=("sandbox", "sandbox")) as http,
        ErpConnector(Endpoint(url, credentials, timeout=5.0, **(bounds or {}))) as erp,
    ):
        yield Env(erp, http)


def delta(before: dict[str, int], after: dict[str, int], route: str) -> int:
    return after.get(route, 0) - before.get(route, 0)


NEW_CUSTOMER = Customer(
    system=System.ERP,
    id="",
    name="Quillon Data Services GmbH",
    legal_name="Quillon Data Services GmbH",
    tax_id="DE811907980",
    country="DE",
    payment_terms="NT30",
    currency="EUR",
)


# ------------------------------------------------------------------------ reads


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


# ------------------------------------------------------------------------ writes


async def test_ensure_customer_is_check_before_create(tmp_path):
    async with environment(tmp_path) as env:
        message = EnsureCustomer("op-1:erp", NEW_CUSTOMER, external_id="001Dn0000EXTAAQ")
        first = await env.erp.handle(message)
        second = await env.erp.handle(message)
        assert first == second
        assert first.id == "1000020"
        assert first.tax_id == "DE811907980"
        assert first.country == "DE"
        assert first.payment_terms == "NT30"
        assert first.currency == "EUR"
        assert first.xref.crm == "001Dn0000EXTAAQ"
        assert (
            await env.count(
                "API_BUSINESS_PARTNER/A_BusinessPartner",
                "BusinessPartnerIDByExtSystem eq '001Dn0000EXTAAQ'",
            )
            == 1
        )

        routes = await env.routes()
        assert routes[CSRF_FETCH] == 1  # one token for the session
        assert routes[f"POST {BP}/A_BusinessPartner"] == 1


async def test_csrf_token_is_refreshed_once_when_the_session_is_gone(tmp_path):
    async with environment(tmp_path) as env:
        await env.erp.handle(EnsureCustomer("k1", NEW_CUSTOMER, external_id="EXT-1"))
        # a reset forgets every session: the cached token is now refused with 403 Required
        await env.http.post("/_sandbox/reset")
        created = await env.erp.handle(EnsureCustomer("k2", NEW_CUSTOMER, external_id="EXT-2"))
        assert created.id == "1000020"
        routes = await env.routes()
        assert routes[CSRF_FETCH] == 1  # stats were reset too: one fetch since
        assert routes[f"POST {BP}/A_BusinessPartner"] == 2  # refused, then accepted


async def test_update_customer_uses_etags_and_rereads_on_412(tmp_path):
    async with environment(tmp_path) as env:
        updated = await env.erp.handle(
            UpdateCustomer(
                "op-2:erp",
                "1000006",
                {
                    "name": "Renamed Holdings AG",
                    "payment_terms": "NT60",
                    "tax_id": "DE000000001",
                    "country": "DE",
                    "credit_status": "blocked",
                },
            )
        )
        assert updated.name == "Renamed Holdings AG"
        assert updated.legal_name == "Renamed Holdings AG"
        assert updated.payment_terms == "NT60"
        assert updated.tax_id == "DE000000001"
        assert updated.country == "DE"
        assert updated.credit_status == "blocked"

        # someone else changes the partner between the connector's read and its MERGE
        http = env.http
        original = env.erp._write
        interfered: list[str] = []

        async def racing_write(method: str, path: str, **kwargs: Any) -> Any:
            if not interfered and "A_BusinessPartner(" in path:
                interfered.append(path)
                token = (await http.get(f"{BP}/", headers={"X-CSRF-Token": "Fetch"})).headers[
                    "x-csrf-token"
                ]
                url = f"{BP}/A_BusinessPartner('1000006')"
                etag = (await http.get(url)).headers["ETag"]
                response = await http.patch(
                    url,
                    json={"SearchTerm2": "RACE"},
                    headers={"X-CSRF-Token": token, "If-Match": etag},
                )
                assert response.status_code == 204
            return await original(method, path, **kwargs)

        env.erp._write = racing_write  # type: ignore[method-assign]
        before = await env.routes()
        again = await env.erp.handle(UpdateCustomer("op-3:erp", "1000006", {"name": "Final AG"}))
        after = await env.routes()
        assert interfered
        assert again.name == "Final AG"
        merges = f"POST {BP}/A_BusinessPartner('1000006')"
        assert delta(before, after, merges) == 2  # 412, then the retry with the fresh ETag
        read = (await http.get(f"{BP}/A_BusinessPartner('1000006')")).json()["d"]
        assert read["SearchTerm2"] == "RACE"

        with pytest.raises(Rejected) as bad_field:
            await env.erp.handle(UpdateCustomer("k", "1000006", {"email": "x@example.com"}))
        assert "email" in bad_field.value.details
        with pytest.raises(NotFound):
            await env.erp.handle(UpdateCustomer("k", "1999999", {"name": "Nobody"}))


async def test_update_conflict_when_the_etag_stays_stale(tmp_path):
    async with environment(tmp_path) as env:
        original = env.erp._write

        async def always_stale(method: str, path: str, **kwargs: Any) -> Any:
            headers = dict(kwargs.pop("headers", None) or {})
            if "If-Match" in headers:
                headers["If-Match"] = "W/\"datetime'2000-01-01T00%3A00%3A00.0000000'\""
            return await original(method, path, headers=headers, **kwargs)

        env.erp._write = always_stale  # type: ignore[method-assign]
        with pytest.raises(Conflict) as conflict:
            await env.erp.handle(UpdateCustomer("k", "1000002", {"name": "Lost Update"}))
        assert conflict.value.status == 412


async def test_ensure_sales_order_is_check_before_create(tmp_path):
    async with environment(tmp_path) as env:
        message = EnsureSalesOrder(
            "op-4:erp",
            customer_id="1000003",
            purchase_order="006Dn0000NEWAAQ",
            items=(("MAT-1002", Decimal("3")), ("MAT-2001", Decimal("10"))),
        )
        first = await env.erp.handle(message)
        second = await env.erp.handle(message)
        assert first == second
        assert first.customer_id == "1000003"
        assert first.net_amount == Decimal("3850.00")
        assert [i.material for i in first.items] == ["MAT-1002", "MAT-2001"]
        assert first.status == "A"
        expression = "PurchaseOrderByCustomer eq '006Dn0000NEWAAQ'"
        assert await env.count("API_SALES_ORDER_SRV/A_SalesOrder", expression) == 1

        with pytest.raises(Rejected) as rejected:
            await env.erp.handle(
                EnsureSalesOrder(
                    "op-5:erp", "1000003", "006OTHER", items=(("MAT-NOPE", Decimal("1")),)
                )
            )
        assert "Material" in rejected.value.details
        assert (
            await env.count(
                "API_SALES_ORDER_SRV/A_SalesOrder", "PurchaseOrderByCustomer eq '006OTHER'"
            )
            == 0
        )


async def test_a_first_delivery_creates_the_order_without_the_lookup(tmp_path):
    """The outbox's first delivery of a write cannot follow an earlier attempt, so the
    check-before-create read is skipped; a redelivery still checks and finds the order."""
    so_set = "GET /sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder"
    async with environment(tmp_path) as env:
        message = EnsureSalesOrder(
            "op-6:erp",
            customer_id="1000003",
            purchase_order="006Dn0000FIRSTQ",
            items=(("MAT-1002", Decimal("1")),),
        )
        before = await env.routes()
        first = await env.erp.handle(dataclasses.replace(message, first_delivery=True))
        after = await env.routes()
        assert delta(before, after, so_set) == 0
        again = await env.erp.handle(message)  # a redelivery: looks first
        assert delta(after, await env.routes(), so_set) == 1
        assert again == first
        expression = "PurchaseOrderByCustomer eq '006Dn0000FIRSTQ'"
        assert await env.count("API_SALES_ORDER_SRV/A_SalesOrder", expression) == 1


# ------------------------------------------------------------------------ error mapping


async def test_error_mapping(tmp_path):
    async with environment(tmp_path) as env:
        read = GetCustomers(("1000001",))

        await env.chaos(throttle=True)
        with pytest.raises(Throttled) as throttled:
            await env.erp.handle(read)
        assert throttled.value.retry_after == 1.0

        await env.chaos(throttle=False, outage=True)
        with pytest.raises(SystemUnavailable):
            await env.erp.handle(read)

        await env.chaos(outage=False, error_rate=1.0)
        with pytest.raises(SystemUnavailable) as failed:
            await env.erp.handle(read)
        assert failed.value.status == 500

        await env.chaos(error_rate=0.0, malformed_rate=1.0)
        with pytest.raises(MalformedResponse):
            await env.erp.handle(read)

        await env.chaos(malformed_rate=0.0)
        assert await env.erp.handle(read)
        with pytest.raises(TypeError, match="GetSubscriptions"):
            await env.erp.handle(GetSubscriptions(("cus_1",)))


async def test_built_in_throttle_and_bad_credentials(tmp_path):
    async with environment(tmp_path, rate=0.01, burst=2, retry_after=3) as env:
        await env.erp.handle(GetCustomers(("1000001",)))
        await env.erp.handle(GetCustomers(("1000001",)))
        with pytest.raises(Throttled) as throttled:
            await env.erp.handle(GetCustomers(("1000001",)))
        assert throttled.value.retry_after == 3.0

    async with environment(tmp_path, {"username": "sandbox", "password": "wrong"}) as env:
        with pytest.raises(Rejected) as rejected:
            await env.erp.handle(GetCustomers(("1000001",)))
        assert rejected.value.status == 401


async def test_values_are_escaped_into_odata_literals(tmp_path):
    async with environment(tmp_path) as env:
        sneaky = "1000001' or BusinessPartner ne '"
        assert await env.erp.handle(GetCustomers((sneaky,))) == {}
        assert await env.erp.handle(FindCustomers("o'brien")) == ()
        assert await env.erp.handle(GetOrders(("x') or (SoldToParty ne 'y",))) == {}


async def test_concurrent_writes_share_one_csrf_fetch(tmp_path):
    async with environment(tmp_path) as env:
        async with anyio.create_task_group() as tg:
            for n in range(5):
                message = EnsureCustomer(f"k{n}", NEW_CUSTOMER, external_id=f"EXT-{n}")
                tg.start_soon(env.erp.handle, message)
        routes = await env.routes()
        assert routes[CSRF_FETCH] == 1
        assert routes[f"POST {BP}/A_BusinessPartner"] == 5
        assert (
            await env.count(
                "API_BUSINESS_PARTNER/A_BusinessPartner",
                "startswith(BusinessPartnerIDByExtSystem,'EXT-')",
            )
            == 5
        )


async def test_slow_answers_become_system_timeout(tmp_path):
    config = SandboxConfig.for_system(
        "erp", data_dir=tmp_path, gateway_url=None, customers=20, fresh=True
    )
    async with (
        serve(create_app(config)) as url,
        httpx.AsyncClient(base_url=url) as http,
        ErpConnector(Endpoint(url, CREDENTIALS, timeout=0.2)) as erp,
    ):
        await http.put("/_sandbox/chaos", json={"latency_ms": [1000, 1000]})
        with pytest.raises(SystemTimeout):
            await erp.handle(GetCustomers(("1000001",)))


async def test_ensure_credit_memo_request_is_check_before_create(tmp_path):
    cmr_set = "GET /sap/opu/odata/sap/API_CREDIT_MEMO_REQUEST_SRV/A_CreditMemoRequest"
    entity_set = "API_CREDIT_MEMO_REQUEST_SRV/A_CreditMemoRequest"
    async with environment(tmp_path) as env:
        [billed] = (
            await env.http.get(
                "/sap/opu/odata/sap/API_BILLING_DOCUMENT_SRV/A_BillingDocument",
                params={"$top": "1", "$format": "json"},
            )
        ).json()["d"]["results"]
        message = EnsureCreditMemoRequest(
            "op-20:erp",
            customer_id=billed["SoldToParty"],
            purchase_order="CW-CREDIT-op-20",
            billing_document=billed["BillingDocument"],
            amount=Decimal("125.50"),
            currency="EUR",
            reason="002",
        )
        before = await env.routes()
        first = await env.erp.handle(dataclasses.replace(message, first_delivery=True))
        after = await env.routes()
        assert delta(before, after, cmr_set) == 0  # a first delivery: no lookup
        again = await env.erp.handle(message)  # a redelivery: looks first and finds it
        assert delta(after, await env.routes(), cmr_set) == 1
        assert again == first
        expression = "PurchaseOrderByCustomer eq 'CW-CREDIT-op-20'"
        assert await env.count(entity_set, expression) == 1
        stored = (await env.http.get(f"/sap/opu/odata/sap/{entity_set}('{first}')")).json()["d"]
        assert stored["SoldToParty"] == billed["SoldToParty"]
        assert stored["ReferenceSDDocument"] == billed["BillingDocument"]
        assert stored["TotalNetAmount"] == "125.50"
        assert stored["TransactionCurrency"] == "EUR"
        assert stored["SDDocumentReason"] == "002"
        assert stored["CreditMemoRequestType"] == "CR"

        plain = await env.erp.handle(
            EnsureCreditMemoRequest(
                "op-21:erp", billed["SoldToParty"], "CW-CREDIT-op-21", Decimal("10"), "EUR", "002"
            )
        )
        assert plain != first
        with pytest.raises(Rejected) as rejected:
            await env.erp.handle(
                EnsureCreditMemoRequest(
                    "op-22:erp",
                    billed["SoldToParty"],
                    "CW-CREDIT-op-22",
                    Decimal("10"),
                    "EUR",
                    "002",
                    billing_document="99999999",
                )
            )
        assert "ReferenceSDDocument" in rejected.value.details
        assert await env.count(entity_set, "PurchaseOrderByCustomer eq 'CW-CREDIT-op-22'") == 0
