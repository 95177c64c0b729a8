"""The billing sandbox's customers: the demo world in Stripe's shape and the search language."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sandbox.billing.helpers import CUSTOMERS, DEMO, _error, _walk, running

pytestmark = pytest.mark.anyio


async def test_demo_world_is_rendered_in_stripe_shape(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):
        customers = await _walk(api, "/v1/customers")
        assert len(customers) == CUSTOMERS + len(DEMO.orphans)
        by_id = {c["id"]: c for c in customers}
        company = DEMO.companies[3]
        doc = by_id[company.billing_id]
        assert doc["object"] == "customer"
        assert doc["livemode"] is False
        assert doc["name"] == company.name
        assert doc["email"] == company.email
        assert doc["metadata"] == {"erp_bp": company.bp, "crm_account_id": company.crm_id}
        assert doc["address"]["country"] == company.country
        assert doc["currency"] == company.currency.lower()
        assert len(doc["preferred_locales"]) == 1
        for orphan in DEMO.orphans:
            assert by_id[orphan.id]["metadata"] == {"erp_bp": orphan.erp_bp}
        created = [c["created"] for c in customers]
        assert created == sorted(created, reverse=True)

        subs = await _walk(api, "/v1/subscriptions", status="all")
        demo_subs = {s.id: s for c in DEMO.companies for s in c.subscriptions}
        assert {s["id"] for s in subs} == set(demo_subs)
        sub = next(s for s in subs if s["status"] == "active")
        assert sub["metadata"]["erp_order"] == demo_subs[sub["id"]].erp_order
        item = sub["items"]["data"][0]
        assert item["object"] == "subscription_item"
        assert item["price"]["object"] == "price"
        assert isinstance(item["quantity"], int)
        default = await _walk(api, "/v1/subscriptions")
        assert all(s["status"] != "canceled" for s in default)

        invoices = await _walk(api, "/v1/invoices")
        statuses = {i["status"] for i in invoices}
        assert statuses == {"draft", "open", "paid", "uncollectible", "void"}
        for invoice in invoices:
            assert invoice["total"] == invoice["subtotal"] + invoice["tax"]
            assert all(isinstance(invoice[k], int) for k in ("amount_due", "amount_paid", "total"))
            if invoice["status"] == "draft":
                assert invoice["number"] is None
            else:
                assert invoice["metadata"]["erp_billing_document"]
                assert invoice["number"]
            if invoice["status"] == "paid":
                assert invoice["amount_remaining"] == 0
        demo_invoice = next(iter(demo_subs.values())).invoices[0]
        one = (await api.get(f"/v1/invoices/{demo_invoice.id}")).json()
        assert one["total"] == int(demo_invoice.total * 100)

        prices = (await api.get("/v1/prices", params={"limit": 100})).json()["data"]
        core = next(p for p in prices if p["id"] == "price_core_monthly")
        assert core["unit_amount"] == 50000
        assert core["recurring"]["interval"] == "month"
        assert core["product"].startswith("prod_")
        assert core["currency"] == "eur"


async def test_customer_search_language_and_injection_attempts(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):

        async def search(query: str, **params: Any) -> httpx.Response:
            return await api.get("/v1/customers/search", params={"query": query, **params})

        company = DEMO.companies[5]
        hit = (await search(f"metadata['erp_bp']:'{company.bp}'")).json()
        assert hit["object"] == "search_result"
        assert hit["url"] == "/v1/customers/search"
        assert [c["id"] for c in hit["data"]] == [company.billing_id]
        assert hit["next_page"] is None
        assert hit["has_more"] is False
        by_name = (await search(f'name:"{company.name.upper()}"')).json()["data"]
        assert [c["id"] for c in by_name] == [company.billing_id]
        fragment = company.name.split()[0][2:7]
        partial = (await search(f"name~'{fragment}'")).json()["data"]
        assert company.billing_id in {c["id"] for c in partial}
        other = DEMO.companies[6]
        either = (await search(f"email:'{company.email}' OR email:'{other.email}'")).json()["data"]
        assert {c["id"] for c in either} >= {company.billing_id, other.billing_id}
        both = (await search(f"email:'{company.email}' AND name:'{other.name}'")).json()["data"]
        assert both == []
        negated = (await search(f"-metadata['erp_bp']:'{company.bp}'", limit=100)).json()["data"]
        assert company.billing_id not in {c["id"] for c in negated}

        pages: list[str] = []
        params: dict[str, Any] = {"limit": 6}
        while True:
            page = (await search("created>0", **params)).json()
            pages.extend(c["id"] for c in page["data"])
            if not page["has_more"]:
                break
            params["page"] = page["next_page"]
        assert len(pages) == len(set(pages)) == CUSTOMERS + len(DEMO.orphans)

        hostile = [
            "name:'x' OR 1=1",
            "name:'x'; DROP TABLE docs",
            "name:'unterminated",
            "metadata['erp_bp]:'1'",
            "id:'cus_1'",
            "name:'a' AND email:'b' OR name:'c'",
            "name~'ab'",
            "__class__:'x'",
            "name:'x' " * 11,
            "",
            "created~'1'",
            "name>'a'",
            "name:'\\",
        ]
        for query in hostile:
            response = await search(query)
            assert response.status_code == 400, (query, response.text)
            assert _error(response)["param"] == "query"
        bad_page = await search("created>0", page="../../etc")
        assert bad_page.status_code == 400
        missing = await api.get("/v1/customers/search")
        assert missing.status_code == 400
        assert _error(missing)["param"] == "query"
