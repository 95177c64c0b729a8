"""The CRM sandbox's API surface: versions, auth, usage limits, describe, chaos, reset and garbage
input.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from tests.sandbox.crm.helpers import BASE, CUSTOMERS, DEMO, OPPS, TOKEN, _count, _error, running

pytestmark = pytest.mark.anyio


async def test_versions_list_needs_no_auth_and_the_api_does(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, root):
        versions = (await root.get("/services/data")).json()
        assert {"label", "url", "version"} <= set(versions[0])
        assert versions[0]["url"] == BASE
        assert versions[0]["version"] == "60.0"
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
            response = await root.get(BASE + "/sobjects/Account/describe", headers=headers)
            assert response.status_code == 401
            assert response.json() == [
                {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
            ]
        ok = await root.get(BASE + "/limits", headers={"Authorization": f"OAuth {TOKEN}"})
        assert ok.status_code == 200
        assert ok.json()["DailyApiRequests"]["Max"] == 100_000
        unknown = await root.get("/services/apexrest/nothing")
        _error(unknown, 404, "NOT_FOUND")


async def test_every_answer_carries_api_usage_and_the_daily_limit_answers_403(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, app_options={"daily_limit": 3}) as (api, _):
        usages = []
        for _ in range(3):
            response = await api.get("/limits")
            usages.append(response.headers["Sforce-Limit-Info"])
        assert usages == ["api-usage=1/3", "api-usage=2/3", "api-usage=3/3"]
        over = await api.get("/sobjects/Account/describe")
        body = _error(over, 403, "REQUEST_LIMIT_EXCEEDED")
        assert body["message"] == "TotalRequests Limit exceeded."
        assert over.headers["Sforce-Limit-Info"] == "api-usage=3/3"
        assert "retry-after" not in over.headers  # Salesforce sends no Retry-After
        error = _error(await api.get("/sobjects/Nope/1"), 403, "REQUEST_LIMIT_EXCEEDED")
        assert error


async def test_the_burst_bucket_answers_the_same_403(tmp_path: Path) -> None:
    async with running(tmp_path, app_options={"per_second": 0.001, "burst": 2}) as (api, _):
        assert (await api.get("/limits")).status_code == 200
        assert (await api.get("/limits")).status_code == 200
        _error(await api.get("/limits"), 403, "REQUEST_LIMIT_EXCEEDED")


async def test_describe_lists_the_fields(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):
        describe = (await api.get("/sobjects/Account/describe")).json()
        assert describe["name"] == "Account"
        assert describe["keyPrefix"] == "001"
        fields = {f["name"]: f for f in describe["fields"]}
        assert fields["ERP_Customer_Id__c"]["externalId"] is True
        assert fields["Id"]["createable"] is False
        assert {"Name", "Payment_Terms__c", "Billing_Status__c", "Tax_Id__c"} <= set(fields)
        opp = (await api.get("/sobjects/Opportunity/describe")).json()
        opp_fields = {f["name"]: f for f in opp["fields"]}
        assert opp_fields["AccountId"]["relationshipName"] == "Account"
        assert opp_fields["IsWon"]["updateable"] is False
        names = {o["name"] for o in (await api.get("/sobjects")).json()["sobjects"]}
        assert names == {"Account", "Contact", "Opportunity", "Task"}


async def test_chaos_modes_answer_in_the_vendor_dialect(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, root):
        await root.put("/_sandbox/chaos", json={"outage": True})
        outage = await api.get("/limits")
        assert outage.status_code == 503
        assert outage.headers.get("connection") == "close"
        await root.put("/_sandbox/chaos", json={"outage": False, "latency_ms": [150, 160]})
        started = time.perf_counter()
        assert (await api.get("/limits")).status_code == 200
        assert time.perf_counter() - started >= 0.15
        await root.put("/_sandbox/chaos", json={"latency_ms": [0, 0], "error_rate": 1.0})
        _error(await api.get("/limits"), 500, "UNKNOWN_EXCEPTION")
        await root.put("/_sandbox/chaos", json={"error_rate": 0.0, "throttle": True})
        throttled = await api.get("/limits")
        _error(throttled, 403, "REQUEST_LIMIT_EXCEEDED")
        assert throttled.headers["Sforce-Limit-Info"].startswith("api-usage=")
        await root.put("/_sandbox/chaos", json={"throttle": False, "malformed_rate": 1.0})
        malformed = await api.get("/sobjects/Account/describe")
        assert malformed.status_code == 200
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(malformed.content)
        await root.put("/_sandbox/chaos", json={"malformed_rate": 0.0})
        assert (await api.get("/limits")).json()["DailyApiRequests"]["Max"] == 100_000


async def test_reset_restores_the_seeded_data(tmp_path: Path) -> None:
    company = DEMO.companies[4]
    async with running(tmp_path) as (api, root):
        original = (await api.get(f"/sobjects/Account/{company.crm_id}")).json()
        await api.patch(f"/sobjects/Account/{company.crm_id}", json={"Name": "Changed"})
        await api.post("/sobjects/Account", json={"Name": "Extra"})
        assert (
            await api.delete(f"/sobjects/Account/{DEMO.companies[5].crm_id}")
        ).status_code == 204
        assert await _count(api, "Opportunity") < len(OPPS)  # the delete cascaded
        assert (await root.post("/_sandbox/reset")).json() == {"reset": True}
        assert (await api.get(f"/sobjects/Account/{company.crm_id}")).json() == original
        assert await _count(api, "Account") == CUSTOMERS
        assert await _count(api, "Opportunity") == len(OPPS)
        usage = (await api.get("/limits")).headers["Sforce-Limit-Info"]
        assert usage.startswith("api-usage=")
        assert int(usage.split("=")[1].split("/")[0]) <= 5  # the counter restarted


async def test_garbage_never_gets_a_500(tmp_path: Path) -> None:
    junk_bodies = [b"", b"null", b"[]", b"{", b"\xff\xfe", b'{"Name": {"a": 1}}', b"1" * 5000]
    paths = [
        "/sobjects/Account",
        f"/sobjects/Account/{DEMO.companies[0].crm_id}",
        "/sobjects/Account/ERP_Customer_Id__c/1000000",
        "/sobjects/Opportunity/006xyz",
        "/composite",
        "/query?q=SELECT",
        "/query/%00",
        "/sobjects/Account/ERP_Customer_Id__c/a/b/c",
        "/sobjects/%2e%2e/describe",
        "/nothing",
    ]
    async with running(tmp_path) as (api, _):
        for path in paths:
            for method in ("GET", "POST", "PATCH", "PUT", "DELETE"):
                if method == "DELETE" and DEMO.companies[0].crm_id in path:
                    continue  # a real delete: not garbage
                for body in junk_bodies if method in ("POST", "PATCH", "PUT") else [b""]:
                    response = await api.request(
                        method, path, content=body, headers={"Content-Type": "application/json"}
                    )
                    assert response.status_code < 500, (method, path, body, response.text)
                    if response.status_code >= 400:
                        assert response.json()[0]["errorCode"]
        big = await api.post("/sobjects/Account", content=b"[" + b"1," * 600_000 + b"1]")
        _error(big, 413, "REQUEST_ENTITY_TOO_LARGE")
        # the demo account survived every PATCH of junk
        account = (await api.get(f"/sobjects/Account/{DEMO.companies[0].crm_id}")).json()
        assert account["Name"] == (DEMO.companies[0].crm_name or DEMO.companies[0].name)
