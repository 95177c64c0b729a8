"""The billing sandbox's subscriptions and invoices: lifecycle, declined cards and search."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sandbox.billing.helpers import DEMO, _error, running

pytestmark = pytest.mark.anyio


async def test_subscription_and_invoice_lifecycle(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):
        customer = (await api.post("/v1/customers", data={"name": "Lifecycle Ltd"})).json()
        created = await api.post(
            "/v1/subscriptions",
            data={
                "customer": customer["id"],
                "items[0][price]": "price_core_monthly",
                "items[0][quantity]": "2",
                "items[1][price]": "price_seat_monthly",
                "items[1][quantity]": "5",
                "metadata[erp_order]": "5009999",
                "collection_method": "send_invoice",
                "days_until_due": "30",
                "expand[]": "latest_invoice",
            },
        )
        assert created.status_code == 200, created.text
        sub = created.json()
        assert sub["status"] == "active"
        assert sub["metadata"] == {"erp_order": "5009999"}
        assert [i["quantity"] for i in sub["items"]["data"]] == [2, 5]
        assert sub["current_period_end"] > sub["current_period_start"]
        invoice = sub["latest_invoice"]
        assert invoice["status"] == "open"
        assert invoice["subtotal"] == 2 * 50000 + 5 * 2500
        assert invoice["amount_remaining"] == invoice["total"] > 0
        assert invoice["due_date"] == invoice["status_transitions"]["finalized_at"] + 30 * 86400
        listed = (await api.get("/v1/subscriptions", params={"customer": customer["id"]})).json()
        assert [s["id"] for s in listed["data"]] == [sub["id"]]

        paid = await api.post(
            f"/v1/invoices/{invoice['id']}/pay", data={"paid_out_of_band": "true"}
        )
        assert paid.json()["status"] == "paid"
        assert paid.json()["amount_remaining"] == 0
        again = await api.post(f"/v1/invoices/{invoice['id']}/pay")
        assert again.status_code == 400

        draft = (await api.post("/v1/invoices", data={"customer": customer["id"]})).json()
        assert draft["status"] == "draft"
        assert draft["number"] is None
        item = await api.post(
            "/v1/invoiceitems",
            data={
                "customer": customer["id"],
                "invoice": draft["id"],
                "price": "price_support_yearly",
            },
        )
        assert item.status_code == 200, item.text
        final = (await api.post(f"/v1/invoices/{draft['id']}/finalize")).json()
        assert final["status"] == "open"
        assert final["number"]
        assert final["subtotal"] == 500000
        refinal = await api.post(f"/v1/invoices/{draft['id']}/finalize")
        assert refinal.status_code == 400
        stamped = await api.post(
            f"/v1/invoices/{draft['id']}", data={"metadata[erp_billing_document]": "90009999"}
        )
        assert stamped.json()["metadata"] == {"erp_billing_document": "90009999"}

        renewed = await api.post(
            f"/v1/subscriptions/{sub['id']}",
            data={"billing_cycle_anchor": "now", "proration_behavior": "none"},
        )
        assert renewed.status_code == 200
        assert renewed.json()["latest_invoice"] != invoice["id"]
        canceled = (await api.delete(f"/v1/subscriptions/{sub['id']}")).json()
        assert canceled["status"] == "canceled"
        assert canceled["canceled_at"]
        assert (await api.delete(f"/v1/subscriptions/{sub['id']}")).status_code == 400
        after = (await api.get("/v1/subscriptions", params={"customer": customer["id"]})).json()
        assert after["data"] == []
        every = await api.get(
            "/v1/subscriptions", params={"customer": customer["id"], "status": "all"}
        )
        assert len(every.json()["data"]) == 1

        events = (await api.get("/v1/events", params={"limit": 100})).json()["data"]
        types = {e["type"] for e in events}
        assert {
            "customer.created",
            "customer.subscription.created",
            "customer.subscription.updated",
            "customer.subscription.deleted",
            "invoice.finalized",
            "invoice.paid",
        } <= types
        deleted = await api.delete(f"/v1/customers/{customer['id']}")
        assert deleted.json() == {"id": customer["id"], "object": "customer", "deleted": True}
        gone = await api.get(f"/v1/customers/{customer['id']}")
        assert gone.json()["deleted"] is True
        missing = await api.get("/v1/subscriptions/sub_nothing")
        assert missing.status_code == 404
        assert _error(missing)["code"] == "resource_missing"


async def test_declined_card_answers_402_and_emits_payment_failed(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):
        customer = (
            await api.post(
                "/v1/customers",
                data={"name": "Declines Inc.", "metadata[sandbox_fail_payments]": "true"},
            )
        ).json()
        sub = (
            await api.post(
                "/v1/subscriptions",
                data={"customer": customer["id"], "items[0][price]": "price_plus_monthly"},
            )
        ).json()
        assert sub["status"] == "incomplete"
        invoice = (await api.get(f"/v1/invoices/{sub['latest_invoice']}")).json()
        assert invoice["status"] == "open"
        assert invoice["attempt_count"] == 1
        declined = await api.post(f"/v1/invoices/{invoice['id']}/pay")
        assert declined.status_code == 402
        error = _error(declined)
        assert error["type"] == "card_error"
        assert error["code"] == "card_declined"
        assert declined.headers["Stripe-Should-Retry"] == "false"
        failed = (await api.get("/v1/events", params={"type": "invoice.payment_failed"})).json()
        assert len(failed["data"]) == 2
        out_of_band = await api.post(
            f"/v1/invoices/{invoice['id']}/pay", data={"paid_out_of_band": "true"}
        )
        assert out_of_band.json()["status"] == "paid"
        settled = (await api.get(f"/v1/subscriptions/{sub['id']}")).json()
        assert settled["status"] == "active"


async def test_invoice_and_subscription_search(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):
        company = next(c for c in DEMO.companies if c.subscriptions)
        sub = company.subscriptions[0]
        query = f"customer:'{company.billing_id}' AND subscription:'{sub.id}'"
        found = await api.get("/v1/invoices/search", params={"query": query, "limit": 100})
        assert found.status_code == 200, found.text
        assert {i["id"] for i in found.json()["data"]} == {i.id for i in sub.invoices}
        paid = await api.get("/v1/invoices/search", params={"query": "status:'paid'"})
        assert all(i["status"] == "paid" for i in paid.json()["data"])
        order = await api.get(
            "/v1/subscriptions/search", params={"query": f"metadata['erp_order']:'{sub.erp_order}'"}
        )
        assert [s["id"] for s in order.json()["data"]] == [sub.id]
        refused = await api.get("/v1/subscriptions/search", params={"query": "customer:'x'"})
        assert refused.status_code == 400
        assert _error(refused)["param"] == "query"
