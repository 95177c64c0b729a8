"""The ERP connector's writes against the real ERP sandbox: check before create, CSRF tokens and
ETags.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import anyio
import pytest

from actors.errors import (
    Conflict,
    NotFound,
    Rejected,
)
from actors.messages import (
    EnsureCreditMemoRequest,
    EnsureCustomer,
    EnsureSalesOrder,
    UpdateCustomer,
)
from canonical import Customer, System
from tests.actors.erp.helpers import BP, delta, environment

pytestmark = pytest.mark.anyio


CSRF_FETCH = f"GET {BP}/"


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
