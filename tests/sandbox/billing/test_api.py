"""The billing sandbox's API surface: auth, pagination, form bodies, the rate limit, chaos, reset
and bad input.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.sandbox.billing.helpers import CUSTOMERS, DEMO, KEY, _error, _walk, running

pytestmark = pytest.mark.anyio


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
