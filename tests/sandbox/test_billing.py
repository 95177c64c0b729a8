"""The billing sandbox (Stripe API v1) against real HTTP on loopback."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.app import SandboxConfig
from sandbox.billing import create_app
from sandbox.demo import generate
from tests.servers import serve

pytestmark = pytest.mark.anyio

KEY = "sk_test_crosswalk"
SECRET = "whsec_test_billing"
CUSTOMERS = 20
DEMO = generate(CUSTOMERS, 42)


def _config(tmp_path: Path, **changes: object) -> SandboxConfig:
    config = SandboxConfig.for_system(
        "billing", data_dir=tmp_path, gateway_url=None, customers=CUSTOMERS
    )
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


@asynccontextmanager
async def running(
    tmp_path: Path, *, app_options: dict[str, Any] | None = None, **changes: object
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """(client with the API key, bare client) against a served billing sandbox."""
    app = create_app(_config(tmp_path, **changes), **(app_options or {}))
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as api,
        httpx.AsyncClient(base_url=url) as bare,
    ):
        yield api, bare


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["type"] in (
        "invalid_request_error",
        "api_error",
        "card_error",
        "idempotency_error",
    )
    assert error["message"]
    return error


async def _walk(api: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    query = {"limit": 7, **params}
    while True:
        response = await api.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["object"] == "list"
        assert page["url"] == path
        items.extend(page["data"])
        if not page["has_more"]:
            return items
        query["starting_after"] = page["data"][-1]["id"]


async def _received(bare: httpx.AsyncClient, route: str) -> int:
    stats = (await bare.get("/_sandbox/stats")).json()
    count: int = stats["by_route"].get(route, 0)
    return count


# ---------------------------------------------------------------- auth and headers


async def test_auth_answers_stripe_401_and_accepts_bearer_or_basic(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, bare):
        missing = await bare.get("/v1/customers")
        assert missing.status_code == 401
        assert "did not provide an API key" in _error(missing)["message"]
        assert missing.headers["Request-Id"].startswith("req_")
        wrong = await bare.get("/v1/customers", headers={"Authorization": "Bearer sk_test_nope"})
        assert wrong.status_code == 401
        assert _error(wrong)["message"].startswith("Invalid API Key provided: ")
        assert wrong.headers["Stripe-Should-Retry"] == "false"
        basic = base64.b64encode(f"{KEY}:".encode()).decode()
        ok = await bare.get("/v1/customers", headers={"Authorization": f"Basic {basic}"})
        assert ok.status_code == 200
        first, second = (await api.get("/v1/prices")), (await api.get("/v1/prices"))
        assert first.headers["Request-Id"] != second.headers["Request-Id"]
        unknown = await api.get("/v1/charges_of_the_light_brigade")
        assert unknown.status_code == 404
        assert "Unrecognized request URL" in _error(unknown)["message"]


# ---------------------------------------------------------------- the demo world


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


async def test_pagination_walks_both_ways_and_refuses_bad_cursors(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):
        forward = await _walk(api, "/v1/invoices")
        ids = [i["id"] for i in forward]
        assert len(ids) == len(set(ids))
        middle = ids[10]
        before = (
            await api.get("/v1/invoices", params={"ending_before": middle, "limit": 3})
        ).json()
        assert [i["id"] for i in before["data"]] == ids[7:10]
        assert before["has_more"] is True
        default = (await api.get("/v1/invoices")).json()
        assert len(default["data"]) == 10
        both = await api.get(
            "/v1/invoices", params={"starting_after": ids[1], "ending_before": ids[5]}
        )
        assert both.status_code == 400
        for bad in ("0", "101", "ten"):
            response = await api.get("/v1/invoices", params={"limit": bad})
            assert response.status_code == 400
            assert _error(response)["param"] == "limit"
        missing = await api.get("/v1/invoices", params={"starting_after": "in_nothing"})
        assert missing.status_code == 400
        assert _error(missing)["param"] == "starting_after"
        mine = await _walk(api, "/v1/invoices", customer=DEMO.companies[0].billing_id)
        assert mine
        assert all(i["customer"] == DEMO.companies[0].billing_id for i in mine)
        opened = await _walk(api, "/v1/invoices", status="open")
        assert opened
        assert all(i["status"] == "open" for i in opened)


# ---------------------------------------------------------------- form bodies


async def test_form_bodies_nest_and_unknown_or_bad_input_is_a_400(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):
        form = (
            "name=Acme+GmbH&email=ap%40acme.example&metadata[erp_bp]=1999001"
            "&metadata[crm_account_id]=001XYZ&address[country]=DE&address[city]=Bonn"
            "&preferred_locales[]=de-DE&preferred_locales[]=en-GB&expand[]=tax_ids"
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        refused = await api.post("/v1/customers", content=form, headers=headers)
        assert refused.status_code == 400
        assert _error(refused)["param"] == "expand"
        created = await api.post(
            "/v1/customers", content=form.replace("&expand[]=tax_ids", ""), headers=headers
        )
        assert created.status_code == 200, created.text
        doc = created.json()
        assert doc["metadata"] == {"erp_bp": "1999001", "crm_account_id": "001XYZ"}
        assert doc["address"]["city"] == "Bonn"
        assert doc["preferred_locales"] == ["de-DE", "en-GB"]
        updated = await api.post(
            f"/v1/customers/{doc['id']}", data={"metadata[crm_account_id]": "", "name": "Acme AG"}
        )
        assert updated.json()["metadata"] == {"erp_bp": "1999001"}
        assert updated.json()["name"] == "Acme AG"

        cases: list[tuple[dict[str, Any], str | None]] = [
            ({"content": "foo=1"}, "foo"),
            ({"content": "address[planet]=Mars"}, "address[planet]"),
            ({"content": "metadata[a=1"}, None),
            ({"content": "metadata=x&metadata[a]=b"}, None),
            ({"content": "preferred_locales[0][x]=1"}, None),
            ({"content": "email=not-an-email"}, "email"),
            ({"content": "a[b][c][d][e][f][g][h][i][j]=1"}, None),
            ({"content": "name=" + "x" * 300}, "name"),
            ({"content": b"name=\xff\xfe"}, None),
        ]
        for kwargs, param in cases:
            response = await api.post("/v1/customers", headers=headers, **kwargs)
            assert response.status_code == 400, (kwargs, response.text)
            assert response.headers["Stripe-Should-Retry"] == "false"
            if param:
                assert _error(response)["param"] == param
        as_json = await api.post("/v1/customers", json={"name": "x"})
        assert as_json.status_code == 400
        assert "application/x-www-form-urlencoded" in _error(as_json)["message"]
        text = await api.post(
            "/v1/customers", content="name=x", headers={"Content-Type": "text/plain"}
        )
        assert text.status_code == 400
        subs = await api.post("/v1/subscriptions", data={"customer": doc["id"]})
        assert subs.status_code == 400
        assert _error(subs)["code"] == "parameter_missing"
        bad_item = await api.post(
            "/v1/subscriptions",
            data={
                "customer": doc["id"],
                "items[0][price]": "price_core_monthly",
                "items[0][quantity]": "two",
            },
        )
        assert _error(bad_item)["param"] == "items[0][quantity]"
        no_price = await api.post(
            "/v1/subscriptions", data={"customer": doc["id"], "items[0][price]": "price_nope"}
        )
        assert no_price.status_code == 400
        assert _error(no_price)["param"] == "items[0][price]"
        total = len(await _walk(api, "/v1/customers"))
        assert total == CUSTOMERS + len(DEMO.orphans) + 1  # nothing half-written


# ---------------------------------------------------------------- search


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


# ---------------------------------------------------------------- subscriptions and invoices


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


# ---------------------------------------------------------------- idempotency


async def test_idempotency_replay_mismatch_concurrency_and_restart(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, bare):
        body = {"name": "Once Only GmbH", "metadata[erp_bp]": "1999555"}
        first = await api.post("/v1/customers", data=body, headers={"Idempotency-Key": "k-1"})
        second = await api.post("/v1/customers", data=body, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == second.status_code == 200
        assert second.json() == first.json()
        assert second.headers["Idempotent-Replayed"] == "true"
        assert second.headers["Original-Request"] == first.headers["Request-Id"]
        assert "Idempotent-Replayed" not in first.headers
        other = await api.post(
            "/v1/customers", data={"name": "Someone Else"}, headers={"Idempotency-Key": "k-1"}
        )
        assert other.status_code == 400
        assert _error(other)["type"] == "idempotency_error"
        found = await api.get(
            "/v1/customers/search", params={"query": "metadata['erp_bp']:'1999555'"}
        )
        assert len(found.json()["data"]) == 1

        # an error answer from the endpoint is stored and replayed too
        refused = {"customer": "cus_missing", "items[0][price]": "price_core_monthly"}
        bad1 = await api.post("/v1/subscriptions", data=refused, headers={"Idempotency-Key": "k-2"})
        bad2 = await api.post("/v1/subscriptions", data=refused, headers={"Idempotency-Key": "k-2"})
        assert bad1.status_code == bad2.status_code == 400
        assert bad2.headers["Idempotent-Replayed"] == "true"

        # the same key while the first request is still running: 409
        await bare.put("/_sandbox/chaos", json={"latency_ms": [400, 400]})
        answers: list[httpx.Response] = []

        async def send() -> None:
            answers.append(
                await api.post(
                    "/v1/customers", data={"name": "Slow"}, headers={"Idempotency-Key": "k-3"}
                )
            )

        before = await _received(bare, "POST /v1/customers")
        async with anyio.create_task_group() as tg:
            tg.start_soon(send)
            # the second goes once the sandbox holds the first (it takes the key on arrival)
            with anyio.fail_after(5):
                while await _received(bare, "POST /v1/customers") == before:  # noqa: ASYNC110 - polls the server: no event to wait on
                    await anyio.sleep(0.01)
            tg.start_soon(send)
        await bare.put("/_sandbox/chaos", json={"latency_ms": [0, 0]})
        assert sorted(a.status_code for a in answers) == [200, 409]
        busy = next(a for a in answers if a.status_code == 409)
        assert _error(busy)["code"] == "idempotency_key_in_use"
        assert busy.headers["Stripe-Should-Retry"] == "true"
        created_id = next(a for a in answers if a.status_code == 200).json()["id"]

    # a restart keeps the stored answers
    async with running(tmp_path) as (api, _):
        replay = await api.post(
            "/v1/customers", data={"name": "Slow"}, headers={"Idempotency-Key": "k-3"}
        )
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json()["id"] == created_id


# ---------------------------------------------------------------- limits, chaos, reset


async def test_built_in_rate_limit_answers_stripe_429(tmp_path: Path) -> None:
    options = {"rate_per_second": 0.5, "rate_burst": 3}
    async with running(tmp_path, app_options=options) as (api, _):
        statuses = [(await api.get("/v1/prices")).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        limited = await api.get("/v1/prices")
        assert limited.status_code == 429
        assert _error(limited)["code"] == "rate_limit"
        assert limited.headers["Stripe-Should-Retry"] == "true"


async def test_chaos_modes_speak_stripe(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, bare):

        async def chaos(**settings: Any) -> None:
            response = await bare.put("/_sandbox/chaos", json=settings)
            assert response.status_code == 200, response.text

        await chaos(outage=True)
        down = await api.get("/v1/customers")
        assert down.status_code == 503
        assert down.headers.get("connection") == "close"
        await chaos(outage=False, latency_ms=[150, 150])
        started = time.monotonic()
        assert (await api.get("/v1/prices")).status_code == 200
        assert time.monotonic() - started >= 0.15
        await chaos(latency_ms=[0, 0], error_rate=1.0)
        failed = await api.get("/v1/customers")
        assert failed.status_code == 500
        assert _error(failed)["type"] == "api_error"
        assert failed.headers["Stripe-Should-Retry"] == "true"
        await chaos(error_rate=0.0, throttle=True)
        throttled = await api.get("/v1/customers")
        assert throttled.status_code == 429
        assert _error(throttled)["code"] == "rate_limit"
        await chaos(throttle=False, malformed_rate=1.0)
        broken = await api.get("/v1/customers")
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(broken.content)
        await chaos(malformed_rate=0.0)
        stats = (await bare.get("/_sandbox/stats")).json()
        assert stats["by_route"]["GET /v1/customers"] == 4


async def test_reset_restores_the_seeded_world(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, bare):
        target = DEMO.companies[0].billing_id
        extra = (await api.post("/v1/customers", data={"name": "Temporary"})).json()
        await api.post(f"/v1/customers/{target}", data={"name": "Renamed"})
        await bare.put("/_sandbox/chaos", json={"throttle": True})
        assert (await bare.post("/_sandbox/reset")).status_code == 200
        assert (await api.get(f"/v1/customers/{extra['id']}")).status_code == 404
        assert (await api.get(f"/v1/customers/{target}")).json()["name"] == DEMO.companies[0].name
        assert len(await _walk(api, "/v1/customers")) == CUSTOMERS + len(DEMO.orphans)
        assert (await api.get("/v1/events")).json()["data"] == []


async def test_bad_input_never_answers_500(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        many = "&".join(f"metadata[k{i}]=v" for i in range(51))
        mixed = {
            "customer": DEMO.companies[0].billing_id,
            "items[0][price]": "price_core_monthly",
            "items[1][price]": "price_enterprise_yearly",
        }
        as_json = {"Content-Type": "application/json"}
        requests: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", "/v1/customers", {"params": {"created[gte]": "yesterday"}}),
            ("GET", "/v1/customers", {"params": {"created[between]": "1"}}),
            ("GET", "/v1/customers", {"params": {"expand[]": "data.nothing"}}),
            ("GET", "/v1/subscriptions", {"params": {"status": "sleeping"}}),
            ("GET", "/v1/invoices", {"params": {"limit[0]": "1"}}),
            ("POST", "/v1/customers", {"content": "%%%=%%%", "headers": form}),
            ("POST", "/v1/customers", {"content": "=value", "headers": form}),
            ("POST", "/v1/customers", {"content": "metadata[]=1", "headers": form}),
            ("POST", "/v1/customers", {"content": "items[0][price]=x", "headers": form}),
            ("POST", "/v1/customers", {"content": many, "headers": form}),
            ("POST", "/v1/customers/cus_nothing", {"data": {"name": "x"}}),
            ("POST", "/v1/invoices/in_nothing/pay", {}),
            ("POST", "/v1/invoices", {"data": {"customer": "cus_nothing"}}),
            ("POST", "/v1/invoiceitems", {"data": {"customer": DEMO.companies[0].billing_id}}),
            ("DELETE", "/v1/customers/cus_nothing", {}),
            ("POST", "/v1/subscriptions", {"data": mixed}),
            ("POST", "/v1/customers", {"content": b'{"name": 1}', "headers": as_json}),
            ("POST", "/v1/customers", {"content": b"x" * 2_000_000, "headers": form}),
        ]  # fmt: skip
        for method, path, kwargs in requests:
            response = await api.request(method, path, **kwargs)
            assert 400 <= response.status_code < 500, (method, path, response.text[:200])
            _error(response)
        assert len(await _walk(api, "/v1/customers")) == CUSTOMERS + len(DEMO.orphans)


# ---------------------------------------------------------------- webhooks


def verify_stripe_signature(
    header: str, body: bytes, secret: str, *, now: float, tolerance: float = 300
) -> None:
    """Stripe's documented scheme, written from the docs: t=<unix>,v1=<hex HMAC-SHA256>."""
    pairs = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for key, value in pairs if key == "t"]
    signatures = [value for key, value in pairs if key == "v1"]
    if len(stamps) != 1 or not signatures:
        raise ValueError("no timestamp or no v1 signature")
    stamp = int(stamps[0])
    if abs(now - stamp) > tolerance:
        raise ValueError("timestamp outside the tolerance")
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise ValueError("no matching v1 signature")


async def test_webhooks_are_signed_stripe_events(tmp_path: Path) -> None:
    received: list[tuple[str, bytes]] = []
    arrived = anyio.Event()

    async def hook(request: Request) -> Response:
        received.append((request.headers["stripe-signature"], await request.body()))
        if len(received) >= 2:
            arrived.set()
        return Response(status_code=200)

    receiver = Starlette(routes=[Route("/webhooks/billing", hook, methods=["POST"])])
    async with serve(receiver) as hook_url:
        url = f"{hook_url}/webhooks/billing"
        async with running(tmp_path, webhook_url=url, webhook_secret=SECRET) as (api, _):
            created = await api.post(
                "/v1/customers", data={"name": "Hooked"}, headers={"Idempotency-Key": "hook-1"}
            )
            customer = created.json()
            await api.post(f"/v1/customers/{customer['id']}", data={"name": "Hooked Again"})
            with anyio.fail_after(10):
                await arrived.wait()
    events = []
    for header, body in received:
        verify_stripe_signature(header, body, SECRET, now=time.time())
        events.append(orjson.loads(body))
    first, second = sorted(events, key=lambda e: e["type"])
    assert first["type"] == "customer.created"
    assert first["object"] == "event"
    assert first["id"].startswith("evt_")
    assert first["livemode"] is False
    assert first["data"]["object"]["id"] == customer["id"]
    assert first["request"] == {"id": created.headers["Request-Id"], "idempotency_key": "hook-1"}
    assert first["pending_webhooks"] == 1
    assert first["api_version"]
    assert second["type"] == "customer.updated"
    assert second["data"]["previous_attributes"] == {"name": "Hooked"}

    header, body = received[0]
    with pytest.raises(ValueError, match="v1"):
        verify_stripe_signature(header, body + b" ", SECRET, now=time.time())
    with pytest.raises(ValueError, match="tolerance"):
        verify_stripe_signature(header, body, SECRET, now=time.time() + 301)
    with pytest.raises(ValueError, match="v1"):
        verify_stripe_signature(header, body, "whsec_other", now=time.time())


async def test_seeding_publishes_no_events(tmp_path: Path) -> None:
    received: list[bytes] = []

    async def hook(request: Request) -> Response:
        received.append(await request.body())
        return Response(status_code=200)

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve(receiver) as hook_url:
        changes = {"webhook_url": f"{hook_url}/hook", "webhook_secret": SECRET}
        async with running(tmp_path, **changes) as (api, bare):
            await bare.post("/_sandbox/reset")
            assert (await api.get("/v1/events")).json()["data"] == []
    assert received == []


# ---------------------------------------------------------------- a real Stripe client


async def test_the_official_stripe_client_works_against_the_sandbox(tmp_path: Path) -> None:
    stripe = pytest.importorskip("stripe")

    def calls(url: str) -> dict[str, Any]:
        client = stripe.StripeClient(KEY, base_addresses={"api": url}, max_network_retries=0)
        customer = client.v1.customers.create(
            params={
                "name": "Client Library GmbH",
                "email": "billing@client-library.example",
                "metadata": {"erp_bp": "1999777", "crm_account_id": "001CLIENT"},
                "address": {"country": "DE"},
                "preferred_locales": ["de-DE"],
            }
        )
        listed = client.v1.customers.list(params={"limit": 5})
        every = [c.id for c in listed.auto_paging_iter()]
        found = client.v1.customers.search(params={"query": "metadata['erp_bp']:'1999777'"})
        sub = client.v1.subscriptions.create(
            params={
                "customer": customer.id,
                "items": [{"price": "price_plus_monthly", "quantity": 3}],
                "metadata": {"erp_order": "5001234"},
            }
        )
        try:
            client.v1.customers.retrieve("cus_nothing")
        except stripe.InvalidRequestError as exc:
            missing = exc.code
        return {
            "customer": customer,
            "first_page": len(listed.data),
            "every": every,
            "found": [c.id for c in found.data],
            "sub": sub,
            "missing": missing,
        }

    async with serve(create_app(_config(tmp_path))) as url:
        result = await anyio.to_thread.run_sync(calls, url)
    customer = result["customer"]
    assert customer.metadata["erp_bp"] == "1999777"
    assert customer.address.country == "DE"
    assert result["first_page"] == 5
    assert len(result["every"]) == len(set(result["every"])) == CUSTOMERS + len(DEMO.orphans) + 1
    assert result["found"] == [customer.id]
    sub = result["sub"]
    assert sub.status == "active"
    assert sub["items"].data[0].quantity == 3
    assert sub.metadata["erp_order"] == "5001234"
    assert result["missing"] == "resource_missing"


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


# ---------------------------------------------------------------- the event feed


async def test_events_feed_filters_pages_and_keeps_each_object_as_it_was(tmp_path: Path) -> None:
    # a receiver nobody listens on: with webhooks off nothing is even tried
    async with running(tmp_path, webhook_url="http://127.0.0.1:9/hook") as (api, bare):
        await bare.post("/_sandbox/chaos", json={"webhooks": False})
        first = (await api.post("/v1/customers", data={"name": "Feed One"})).json()
        await api.post(f"/v1/customers/{first['id']}", data={"name": "Feed One Renamed"})
        for n in range(4):
            await api.post("/v1/customers", data={"name": f"Feed {n + 2}"})
        await api.delete(f"/v1/customers/{first['id']}")
        stats = (await bare.get("/_sandbox/stats")).json()
        assert stats["webhooks"]["suppressed"] == 7

        every = await _walk(api, "/v1/events", limit=3)
        assert [e["type"] for e in every] == [
            "customer.deleted",
            *["customer.created"] * 4,
            "customer.updated",
            "customer.created",
        ]
        assert all(e["pending_webhooks"] == 0 for e in every)
        created_at = [e["created"] for e in every]
        assert created_at == sorted(created_at, reverse=True)
        # each event holds the object as it was when the event was raised
        assert every[-1]["data"]["object"]["name"] == "Feed One"
        assert every[-2]["data"]["object"]["name"] == "Feed One Renamed"
        assert every[-2]["data"]["previous_attributes"] == {"name": "Feed One"}

        page = (await api.get("/v1/events", params={"limit": 2})).json()
        assert page["has_more"] is True
        assert [e["id"] for e in page["data"]] == [e["id"] for e in every[:2]]
        back = await api.get("/v1/events", params={"limit": 2, "ending_before": every[3]["id"]})
        assert [e["id"] for e in back.json()["data"]] == [e["id"] for e in every[1:3]]
        assert back.json()["has_more"] is True
        one = await api.get("/v1/events", params={"limit": 100, "starting_after": every[5]["id"]})
        assert [e["id"] for e in one.json()["data"]] == [every[6]["id"]]
        assert one.json()["has_more"] is False

        t = every[-1]["created"]
        for op, keep in (
            ("gt", lambda c: c > t),
            ("gte", lambda c: c >= t),
            ("lt", lambda c: c < t),
            ("lte", lambda c: c <= t),
        ):
            answer = await api.get("/v1/events", params={f"created[{op}]": t, "limit": 100})
            assert [e["id"] for e in answer.json()["data"]] == [
                e["id"] for e in every if keep(e["created"])
            ], op
        later = await api.get("/v1/events", params={"created[gt]": int(time.time()) + 60})
        assert later.json()["data"] == []

        picked = await api.get(
            "/v1/events",
            params=[("types[]", "customer.updated"), ("types[]", "customer.deleted")],
        )
        assert [e["type"] for e in picked.json()["data"]] == [
            "customer.deleted",
            "customer.updated",
        ]
        single = await api.get("/v1/events", params={"type": "customer.updated"})
        assert [e["id"] for e in single.json()["data"]] == [every[-2]["id"]]
        wildcard = await api.get("/v1/events", params={"type": "customer.*", "limit": 100})
        assert len(wildcard.json()["data"]) == len(every)
        both = await api.get(
            "/v1/events", params={"type": "customer.updated", "types[]": "customer.deleted"}
        )
        assert both.status_code == 400
        assert "type, types" in _error(both)["message"]
        for bad in (0, 101):
            wrong = await api.get("/v1/events", params={"limit": bad})
            assert wrong.status_code == 400
            assert _error(wrong)["param"] == "limit"
