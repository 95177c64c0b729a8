"""The CRM sandbox (Salesforce REST API v60.0) against real HTTP on loopback."""

from __future__ import annotations

import dataclasses
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.app import SandboxConfig
from sandbox.crm import create_app
from sandbox.demo import generate
from tests.servers import serve

pytestmark = pytest.mark.anyio

TOKEN = "00DSANDBOX!crosswalk"
BASE = "/services/data/v60.0"
CUSTOMERS = 20
DEMO = generate(CUSTOMERS, 42)
OPPS = [(c, o) for c in DEMO.companies for o in c.opportunities]


def _config(tmp_path: Path, **changes: object) -> SandboxConfig:
    config = SandboxConfig.for_system(
        "crm", data_dir=tmp_path, gateway_url=None, customers=CUSTOMERS
    )
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


@asynccontextmanager
async def running(
    tmp_path: Path, *, app_options: dict[str, Any] | None = None, **changes: object
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """(api client on /services/data/v60.0 with the token, bare client on the root)."""
    app = create_app(_config(tmp_path, **changes), **(app_options or {}))
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url + BASE, headers={"Authorization": f"Bearer {TOKEN}"}) as api,
        httpx.AsyncClient(base_url=url) as root,
    ):
        yield api, root


async def _query(api: httpx.AsyncClient, soql: str) -> dict[str, Any]:
    response = await api.get("/query", params={"q": soql})
    assert response.status_code == 200, response.text
    return response.json()


async def _query_all(api: httpx.AsyncClient, soql: str) -> list[dict[str, Any]]:
    body = await _query(api, soql)
    records = list(body["records"])
    while not body["done"]:
        response = await api.get(body["nextRecordsUrl"].removeprefix(BASE))
        assert response.status_code == 200, response.text
        body = response.json()
        records.extend(body["records"])
    return records


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body, list), body
    assert body[0]["errorCode"] == code, body
    assert body[0]["message"]
    return body[0]


async def _count(api: httpx.AsyncClient, obj: str) -> int:
    return int((await _query(api, f"SELECT COUNT() FROM {obj}"))["totalSize"])


# ---------------------------------------------------------------- auth, versions, limits


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


# ---------------------------------------------------------------- records


async def test_create_read_update_delete_account(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):
        created = await api.post(
            "/sobjects/Account",
            json={
                "Name": "Acme Tools GmbH",
                "ERP_Customer_Id__c": "1999001",
                "BillingCountry": "DE",
            },
        )
        assert created.status_code == 201
        body = created.json()
        assert body["success"] is True
        assert body["errors"] == []
        account_id = body["id"]
        assert len(account_id) == 18
        assert account_id.startswith("001")
        assert created.headers["Location"] == f"{BASE}/sobjects/Account/{account_id}"

        record = (await api.get(f"/sobjects/Account/{account_id}")).json()
        assert record["attributes"] == {
            "type": "Account",
            "url": f"{BASE}/sobjects/Account/{account_id}",
        }
        assert record["Name"] == "Acme Tools GmbH"
        assert record["Industry"] is None
        assert record["CreatedDate"].endswith("+0000")
        some = (
            await api.get(f"/sobjects/Account/{account_id}", params={"fields": "Name,Id"})
        ).json()
        assert set(some) == {"attributes", "Name", "Id"}
        short = await api.get(f"/sobjects/Account/{account_id[:15]}")
        assert short.json()["Id"] == account_id  # a 15-character id finds the record

        patched = await api.patch(
            f"/sobjects/Account/{account_id}",
            json={"Payment_Terms__c": "NT30", "Industry": "Energy"},
        )
        assert patched.status_code == 204
        assert patched.content == b""
        after = (await api.get(f"/sobjects/Account/{account_id}")).json()
        assert (after["Payment_Terms__c"], after["Industry"]) == ("NT30", "Energy")
        assert after["LastModifiedDate"] >= record["LastModifiedDate"]

        assert (await api.delete(f"/sobjects/Account/{account_id}")).status_code == 204
        _error(await api.get(f"/sobjects/Account/{account_id}"), 404, "NOT_FOUND")
        _error(await api.delete(f"/sobjects/Account/{account_id}"), 404, "NOT_FOUND")
        _error(await api.get("/sobjects/Widget/001000000000000AAA"), 404, "NOT_FOUND")


async def test_opportunity_rules_required_fields_and_derived_flags(tmp_path: Path) -> None:
    company = DEMO.companies[0]
    async with running(tmp_path) as (api, _):
        missing = _error(
            await api.post("/sobjects/Opportunity", json={"AccountId": company.crm_id}),
            400,
            "REQUIRED_FIELD_MISSING",
        )
        assert set(missing["fields"]) == {"Name", "StageName", "CloseDate"}
        created = await api.post(
            "/sobjects/Opportunity",
            json={
                "AccountId": company.crm_id[:15],
                "Name": "Renewal",
                "StageName": "Negotiation/Review",
                "CloseDate": "2027-01-31",
                "Amount": 1200.5,
                "Products__c": "CW-CORE;CW-SEAT",
            },
        )
        assert created.status_code == 201, created.text
        opp_id = created.json()["id"]
        assert opp_id.startswith("006")
        opp = (await api.get(f"/sobjects/Opportunity/{opp_id}")).json()
        assert (opp["IsClosed"], opp["IsWon"], opp["AccountId"]) == (False, False, company.crm_id)
        await api.patch(f"/sobjects/Opportunity/{opp_id}", json={"StageName": "Closed Won"})
        opp = (await api.get(f"/sobjects/Opportunity/{opp_id}")).json()
        assert (opp["IsClosed"], opp["IsWon"]) == (True, True)
        readonly = _error(
            await api.patch(f"/sobjects/Opportunity/{opp_id}", json={"IsWon": False}),
            400,
            "INVALID_FIELD_FOR_INSERT_UPDATE",
        )
        assert readonly["fields"] == ["IsWon"]
        _error(
            await api.patch(f"/sobjects/Opportunity/{opp_id}", json={"StageName": None}),
            400,
            "REQUIRED_FIELD_MISSING",
        )
        _error(
            await api.patch(f"/sobjects/Opportunity/{opp_id}", json={"StageName": "Maybe"}),
            400,
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        )
        bad_ref = await api.post(
            "/sobjects/Opportunity",
            json={
                "AccountId": "001Dn0000ZZZZZZAAQ",
                "Name": "x",
                "StageName": "Prospecting",
                "CloseDate": "2027-01-01",
            },
        )
        _error(bad_ref, 400, "INVALID_CROSS_REFERENCE_KEY")


async def test_bad_writes_are_refused_before_they_touch_the_store(tmp_path: Path) -> None:
    account = DEMO.companies[1].crm_id
    async with running(tmp_path) as (api, _):
        before = (await api.get(f"/sobjects/Account/{account}")).json()
        accounts = await _count(api, "Account")
        acc, one = "/sobjects/Account", f"/sobjects/Account/{account}"
        opp = {"Name": "x", "StageName": "Prospecting", "CloseDate": "2027-01-01"}
        other_bp = DEMO.companies[2].bp
        text = {"Content-Type": "text/plain"}
        cases: list[tuple[httpx.Response, int, str]] = [
            (await api.post(acc, json={"Name": "x", "Nope__c": 1}), 400, "INVALID_FIELD"),
            (await api.post(acc, json={"Industry": "E"}), 400, "REQUIRED_FIELD_MISSING"),
            (await api.post(acc, json=["Name"]), 400, "JSON_PARSER_ERROR"),
            (await api.post(acc, content=b'{"Name": "x"'), 400, "JSON_PARSER_ERROR"),
            (await api.post(acc, content=b"Name=x", headers=text), 415, "UNSUPPORTED_MEDIA_TYPE"),
            (await api.post(acc, json={"Name": 5}), 400, "INVALID_TYPE_ON_FIELD_IN_RECORD"),
            (await api.post(acc, json={"Name": "x" * 300}), 400, "STRING_TOO_LONG"),
            (await api.patch(one, json={"Name": None}), 400, "REQUIRED_FIELD_MISSING"),
            (await api.patch(one, json={"Id": "001"}), 400, "INVALID_FIELD_FOR_INSERT_UPDATE"),
            (await api.patch(one, json={"Name": "ok", "Bad": 1}), 400, "INVALID_FIELD"),
            (await api.put(one, json={"Name": "x"}), 405, "METHOD_NOT_ALLOWED"),
            (await api.patch(one, json={"ERP_Customer_Id__c": other_bp}), 400, "DUPLICATE_VALUE"),
            (
                await api.post("/sobjects/Opportunity", json={**opp, "CloseDate": "2027-02-30"}),
                400,
                "INVALID_TYPE_ON_FIELD_IN_RECORD",
            ),
            (
                await api.post("/sobjects/Opportunity", json={**opp, "Amount": "1e3"}),
                400,
                "INVALID_TYPE_ON_FIELD_IN_RECORD",
            ),
        ]
        for response, status, code in cases:
            _error(response, status, code)
        assert await _count(api, "Account") == accounts
        assert (await api.get(f"/sobjects/Account/{account}")).json() == before


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


async def test_demo_world_rendering_honours_the_drift(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):
        accounts = {
            r["Id"]: r
            for r in await _query_all(
                api, "SELECT Id, Name, ERP_Customer_Id__c, Payment_Terms__c, Tax_Id__c FROM Account"
            )
        }
        assert len(accounts) == CUSTOMERS
        for company in DEMO.companies:
            account = accounts[company.crm_id]
            assert account["Name"] == (company.crm_name or company.name)
            assert account["ERP_Customer_Id__c"] == company.bp
            assert account["Payment_Terms__c"] == (
                company.crm_payment_terms or company.payment_terms
            )
            assert account["Tax_Id__c"] == company.tax_id
        drifted = [d for d in DEMO.drift if d.system == "crm"]
        assert drifted, "the demo world plants CRM drift for 20 customers"
        for drift in drifted:
            field = "Name" if drift.field == "name" else "Payment_Terms__c"
            assert accounts[drift.record_id][field] == drift.actual
        opps = await _query_all(
            api, "SELECT Id, StageName, IsWon, ERP_Order_Number__c, Products__c FROM Opportunity"
        )
        assert len(opps) == len(OPPS)
        by_id = {o["Id"]: o for o in opps}
        for _company, opp in OPPS:
            row = by_id[opp.id]
            assert row["StageName"] == opp.stage
            assert row["IsWon"] == opp.is_won
            assert row["Products__c"] == ";".join(opp.products)
            assert row["ERP_Order_Number__c"] == opp.erp_order
        assert await _count(api, "Contact") == CUSTOMERS


# ---------------------------------------------------------------- upsert by external id


async def test_upsert_by_external_id_creates_updates_and_reports_duplicates(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (api, _):
        path = "/sobjects/Account/ERP_Customer_Id__c/1999777"
        _error(await api.get(path), 404, "NOT_FOUND")
        created = await api.patch(path, json={"Name": "Upserted AG"})
        assert created.status_code == 201
        assert created.json() == {
            "id": created.json()["id"],
            "success": True,
            "errors": [],
            "created": True,
        }
        updated = await api.patch(path, json={"Name": "Upserted AG", "Industry": "Energy"})
        assert updated.status_code == 200
        assert updated.json()["created"] is False
        assert updated.json()["id"] == created.json()["id"]
        read = (await api.get(path)).json()
        assert (read["Name"], read["Industry"]) == ("Upserted AG", "Energy")
        _error(await api.patch(path, json={"Bogus": 1}), 400, "INVALID_FIELD")
        _error(await api.patch(path, json={"ERP_Customer_Id__c": "other"}), 400, "INVALID_FIELD")
        _error(await api.patch("/sobjects/Account/Name/x", json={"Name": "x"}), 404, "NOT_FOUND")
        missing = await api.patch("/sobjects/Account/ERP_Customer_Id__c/1999778", json={})
        _error(missing, 400, "REQUIRED_FIELD_MISSING")

        # uniqueness holds on create; the sandbox-only header plants a duplicate
        duplicate = {"Name": "Twin", "ERP_Customer_Id__c": "1999777"}
        _error(await api.post("/sobjects/Account", json=duplicate), 400, "DUPLICATE_VALUE")
        planted = await api.post(
            "/sobjects/Account", json=duplicate, headers={"X-Sandbox-Allow-Duplicate": "true"}
        )
        assert planted.status_code == 201
        several = await api.patch(path, json={"Name": "Which one?"})
        assert several.status_code == 300
        assert sorted(several.json()) == sorted(
            f"{BASE}/sobjects/Account/{i}" for i in (created.json()["id"], planted.json()["id"])
        )
        assert (await api.get(path)).status_code == 300
        names = await _query(api, "SELECT Name FROM Account WHERE ERP_Customer_Id__c = '1999777'")
        assert sorted(r["Name"] for r in names["records"]) == ["Twin", "Upserted AG"]


async def test_concurrent_upserts_of_one_external_id_make_one_record(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):
        statuses: list[int] = []

        async def upsert(n: int) -> None:
            response = await api.patch(
                "/sobjects/Account/ERP_Customer_Id__c/1999888", json={"Name": "Racer"}
            )
            statuses.append(response.status_code)

        async with anyio.create_task_group() as tg:
            for n in range(12):
                tg.start_soon(upsert, n)
        assert sorted(statuses) == [200] * 11 + [201]
        found = await _query(api, "SELECT Id FROM Account WHERE ERP_Customer_Id__c = '1999888'")
        assert found["totalSize"] == 1


# ---------------------------------------------------------------- SOQL


async def test_query_paging_walks_every_record_once(tmp_path: Path) -> None:
    async with running(tmp_path, app_options={"batch_size": 3}) as (api, _):
        first = await _query(api, "SELECT Id FROM Opportunity")
        assert first["totalSize"] == len(OPPS)
        assert first["done"] is False
        assert len(first["records"]) == 3
        assert first["nextRecordsUrl"].startswith(f"{BASE}/query/")
        records = await _query_all(api, "SELECT Id FROM Opportunity")
        assert [r["Id"] for r in records] == [o.id for _, o in OPPS]
        limited = await _query(api, "SELECT Id FROM Opportunity LIMIT 3")
        assert limited["done"] is True
        assert "nextRecordsUrl" not in limited
        _error(await api.get("/query/01gNOPE-3"), 400, "INVALID_QUERY_LOCATOR")
        _error(await api.get("/query"), 400, "MALFORMED_QUERY")
        # the real header sizes batches too (Salesforce's minimum is 200)
        sized = await api.get(
            "/query",
            params={"q": "SELECT Id FROM Opportunity"},
            headers={"Sforce-Query-Options": "batchSize=200"},
        )
        assert sized.json()["done"] is True


async def test_query_filters_order_and_literals(tmp_path: Path) -> None:
    companies = DEMO.companies
    async with running(tmp_path) as (api, _):

        async def ids(where: str, obj: str = "Opportunity") -> set[str]:
            records = await _query_all(api, f"SELECT Id FROM {obj} WHERE {where}")
            return {r["Id"] for r in records}

        won = {o.id for _, o in OPPS if o.is_won}
        assert await ids("IsWon = true") == won
        assert await ids("IsWon != true") == {o.id for _, o in OPPS} - won
        assert await ids("StageName IN ('Closed Won', 'Closed Lost')") == {
            o.id for _, o in OPPS if o.is_closed
        }
        assert await ids("StageName NOT IN ('Closed Won', 'Closed Lost')") == {
            o.id for _, o in OPPS if not o.is_closed
        }
        assert await ids("Amount >= 30000 AND Amount < 100000") == {
            o.id for _, o in OPPS if 30000 <= o.amount < 100000
        }
        assert await ids("NOT (Amount > 10000) OR IsWon = true") == {
            o.id for _, o in OPPS if not o.amount > 10000 or o.is_won
        }
        assert await ids("CloseDate > 2026-11-01") == {
            o.id for _, o in OPPS if o.close_date.isoformat() > "2026-11-01"
        }
        assert await ids("CloseDate < TODAY") == {
            o.id for _, o in OPPS if o.close_date < time_today()
        }
        assert await ids("ERP_Order_Number__c = null") == {o.id for _, o in OPPS if not o.erp_order}
        assert await ids("Products__c LIKE '%CW-SEAT%'") == {
            o.id for _, o in OPPS if "CW-SEAT" in o.products
        }
        target = companies[3]
        assert await ids(f"Account.Name = '{target.crm_name or target.name}'") == {
            o.id for o in target.opportunities
        }
        # text compares case-insensitively; ids match their 15-character form
        plain = next(c for c in companies if c.crm_name is None)
        assert await ids(f"Name = '{plain.name.upper()}'", "Account") == {plain.crm_id}
        assert await ids(f"Id = '{target.crm_id[:15]}'", "Account") == {target.crm_id}
        assert await ids("Name LIKE 'a%'", "Account") == {
            c.crm_id for c in companies if (c.crm_name or c.name).lower().startswith("a")
        }

        ordered = await _query(
            api,
            "SELECT Name, Amount FROM Opportunity ORDER BY Amount DESC, Name ASC LIMIT 5 OFFSET 2",
        )
        expected = sorted(OPPS, key=lambda p: (-p[1].amount, p[1].name.casefold()))[2:7]
        assert [r["Name"] for r in ordered["records"]] == [o.name for _, o in expected]
        assert set(ordered["records"][0]) == {"attributes", "Name", "Amount"}
        nulls = await _query(
            api,
            "SELECT ERP_Order_Number__c FROM Opportunity ORDER BY ERP_Order_Number__c NULLS LAST",
        )
        values = [r["ERP_Order_Number__c"] for r in nulls["records"]]
        assert values[-1] is None
        assert values[0] is not None
        count = await _query(api, "SELECT COUNT() FROM Opportunity WHERE IsWon = true")
        assert (count["totalSize"], count["records"]) == (len(won), [])
        joined = await _query(
            api,
            f"SELECT Id, Account.Name FROM Opportunity WHERE Id = '{target.opportunities[0].id}'",
        )
        row = joined["records"][0]
        assert row["Account"]["Name"] == (target.crm_name or target.name)
        assert row["Account"]["attributes"]["type"] == "Account"


def time_today() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC).date()


async def test_string_escapes_are_honoured(tmp_path: Path) -> None:
    tricky = "O'Brien \\ Sons 100%_done"
    async with running(tmp_path) as (api, _):
        created = await api.post("/sobjects/Account", json={"Name": tricky})
        account_id = created.json()["id"]
        found = await _query(
            api, "SELECT Id FROM Account WHERE Name = 'O\\'Brien \\\\ Sons 100%_done'"
        )
        assert [r["Id"] for r in found["records"]] == [account_id]
        like = await _query(api, "SELECT Id FROM Account WHERE Name LIKE '%100\\%\\_done'")
        assert [r["Id"] for r in like["records"]] == [account_id]
        # unescaped % and _ are wildcards
        wild = await _query(api, "SELECT Id FROM Account WHERE Name LIKE '%1_0%'")
        assert account_id in {r["Id"] for r in wild["records"]}
        none = await _query(api, "SELECT Id FROM Account WHERE Name LIKE '%100\\%\\_xone'")
        assert none["records"] == []


BAD_QUERIES = [
    ("SELECT Id FROM Account WHERE Name = 'x' OR Name LIKE '%", "MALFORMED_QUERY"),
    ("SELECT Id FROM Account WHERE Name = 'x'' OR Name LIKE '%'", "MALFORMED_QUERY"),
    ("SELECT Id FROM Account WHERE Name = 'a\\qb'", "MALFORMED_QUERY"),
    ("SELECT Id FROM Account WHERE Name = x", "MALFORMED_QUERY"),
    ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY"),
    ("SELECT FROM Account", "MALFORMED_QUERY"),
    ("SELECT Id FROM Account; DELETE FROM Account", "MALFORMED_QUERY"),
    ("SELECT Id FROM Account WHERE Amount = 5", "INVALID_FIELD"),
    ("SELECT Bogus__c FROM Account", "INVALID_FIELD"),
    ("SELECT Id FROM Lead", "INVALID_TYPE"),
    ("SELECT Id FROM Opportunity WHERE Amount = '5'", "MALFORMED_QUERY"),
    ("SELECT Id FROM Opportunity WHERE CloseDate = '2026-01-01'", "MALFORMED_QUERY"),
    ("SELECT Id FROM Opportunity WHERE IsWon > true", "MALFORMED_QUERY"),
    ("SELECT Id FROM Account WHERE Id = 'abc'", "MALFORMED_QUERY"),
    ("SELECT Id, COUNT() FROM Account", "MALFORMED_QUERY"),
    ("SELECT Id FROM Account LIMIT -1", "MALFORMED_QUERY"),
    ("SELECT Id FROM Account OFFSET 5000", "NUMBER_OUTSIDE_VALID_RANGE"),
    ("SELECT Id FROM Account WHERE Owner.Name = 'x'", "INVALID_FIELD"),
    ("SELECT Id FROM Opportunity WHERE Amount LIKE '1%'", "MALFORMED_QUERY"),
    ("", "MALFORMED_QUERY"),
]


async def test_bad_queries_answer_400_with_the_vendor_code(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):
        for soql, code in BAD_QUERIES:
            _error(await api.get("/query", params={"q": soql}), 400, code)
        assert await _count(api, "Account") == CUSTOMERS


# ---------------------------------------------------------------- composite


async def test_composite_with_references(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):
        response = await api.post(
            "/composite",
            json={
                "allOrNone": True,
                "compositeRequest": [
                    {
                        "method": "POST",
                        "url": f"{BASE}/sobjects/Account",
                        "referenceId": "refAccount",
                        "body": {"Name": "Composite GmbH"},
                    },
                    {
                        "method": "GET",
                        "url": f"{BASE}/sobjects/Account/@{{refAccount.id}}?fields=Name",
                        "referenceId": "refRead",
                    },
                    {
                        "method": "POST",
                        "url": f"{BASE}/sobjects/Opportunity",
                        "referenceId": "refOpp",
                        "body": {
                            "AccountId": "@{refAccount.id}",
                            "Name": "@{refRead.Name} - Core",
                            "StageName": "Prospecting",
                            "CloseDate": "2027-03-01",
                        },
                    },
                    {
                        "method": "GET",
                        "url": f"{BASE}/query?q=SELECT+Name+FROM+Opportunity+WHERE+AccountId+%3D+"
                        "%27@{refAccount.id}%27",
                        "referenceId": "refQuery",
                    },
                ],
            },
        )
        assert response.status_code == 200
        results = response.json()["compositeResponse"]
        assert [r["httpStatusCode"] for r in results] == [201, 200, 201, 200]
        assert [r["referenceId"] for r in results] == [
            "refAccount",
            "refRead",
            "refOpp",
            "refQuery",
        ]
        assert results[0]["httpHeaders"]["Location"].endswith(results[0]["body"]["id"])
        assert results[3]["body"]["records"][0]["Name"] == "Composite GmbH - Core"


async def test_composite_all_or_none_rolls_back(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):
        accounts = await _count(api, "Account")
        request = {
            "allOrNone": True,
            "compositeRequest": [
                {
                    "method": "POST",
                    "url": f"{BASE}/sobjects/Account",
                    "referenceId": "a",
                    "body": {"Name": "Rolled Back"},
                },
                {
                    "method": "PATCH",
                    "url": f"{BASE}/sobjects/Account/{DEMO.companies[0].crm_id}",
                    "referenceId": "b",
                    "body": {"Industry": "Rolled Back"},
                },
                {
                    "method": "POST",
                    "url": f"{BASE}/sobjects/Opportunity",
                    "referenceId": "c",
                    "body": {"AccountId": "@{a.id}", "Name": "no stage"},
                },
                {"method": "GET", "url": f"{BASE}/limits", "referenceId": "d"},
            ],
        }
        response = await api.post("/composite", json=request)
        assert response.status_code == 200
        results = response.json()["compositeResponse"]
        codes = [r["body"][0]["errorCode"] for r in results]
        assert codes == [
            "PROCESSING_HALTED",
            "PROCESSING_HALTED",
            "REQUIRED_FIELD_MISSING",
            "PROCESSING_HALTED",
        ]
        assert await _count(api, "Account") == accounts
        first = (await api.get(f"/sobjects/Account/{DEMO.companies[0].crm_id}")).json()
        assert first["Industry"] == DEMO.companies[0].industry

        # without allOrNone, each subrequest stands alone; references to a failure halt
        request["allOrNone"] = False
        request["compositeRequest"][2]["body"] = {"AccountId": "@{x.id}", "Name": "n"}  # type: ignore[index]
        results = (await api.post("/composite", json=request)).json()["compositeResponse"]
        assert [r["httpStatusCode"] for r in results] == [201, 204, 400, 200]
        assert results[2]["body"][0]["errorCode"] == "PROCESSING_HALTED"
        assert await _count(api, "Account") == accounts + 1

        for bad in (
            {"compositeRequest": "x"},
            {"compositeRequest": []},
            {"compositeRequest": [{"method": "GET"}]},
            {"compositeRequest": [{"method": "GET", "url": "/x", "referenceId": "a"}] * 2},
            {"compositeRequest": [{"method": "GET", "url": "/x", "referenceId": "a"}] * 26},
            [],
        ):
            response = await api.post("/composite", json=bad)
            assert response.status_code == 400, (bad, response.text)
            assert response.json()[0]["errorCode"] in ("JSON_PARSER_ERROR", "INVALID_INPUT")
        outside = await api.post(
            "/composite",
            json={
                "compositeRequest": [{"method": "GET", "url": "/etc/passwd", "referenceId": "a"}]
            },
        )
        assert outside.json()["compositeResponse"][0]["httpStatusCode"] == 400


# ---------------------------------------------------------------- chaos and reset


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


# ---------------------------------------------------------------- change events


@asynccontextmanager
async def receiver(secret: str) -> AsyncIterator[tuple[str, list[dict[str, Any]], anyio.Event]]:
    """A gateway stand-in that verifies the bearer secret on its own, and records events."""
    events: list[dict[str, Any]] = []
    arrived = anyio.Event()
    rejected: list[str] = []

    async def hook(request: Request) -> Response:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {secret}".encode()):
            rejected.append(given)
            return Response(status_code=401)
        events.append(orjson.loads(await request.body()))
        arrived.set()
        return Response(status_code=200)

    app = Starlette(routes=[Route("/webhooks/crm", hook, methods=["POST"])])
    async with serve(app) as url:
        yield url + "/webhooks/crm", events, arrived
    assert rejected == []


async def _wait_for(events: list[dict[str, Any]], count: int) -> None:
    with anyio.fail_after(10):
        while len(events) < count:  # noqa: ASYNC110 - woken by each delivery below
            await anyio.sleep(0.02)


async def test_change_events_are_pushed_with_the_bearer_secret(tmp_path: Path) -> None:
    secret = "crm_test_secret"
    async with (
        receiver(secret) as (hook_url, events, arrived),
        running(tmp_path, webhook_url=hook_url, webhook_secret=secret) as (api, _),
    ):
        headers = {"Sforce-Call-Options": "client=crosswalk"}
        created = await api.post(
            "/sobjects/Opportunity",
            json={
                "AccountId": DEMO.companies[0].crm_id,
                "Name": "Events",
                "StageName": "Prospecting",
                "CloseDate": "2027-01-01",
                "Amount": 100,
            },
            headers=headers,
        )
        opp_id = created.json()["id"]
        with anyio.fail_after(10):
            await arrived.wait()
        await api.patch(f"/sobjects/Opportunity/{opp_id}", json={"StageName": "Closed Won"})
        await api.patch(
            f"/sobjects/Account/{DEMO.companies[0].crm_id}",
            json={"Billing_Status__c": "paid"},
            headers={"Sforce-Call-Options": "client=portal, defaultNamespace=x"},
        )
        await api.delete(f"/sobjects/Opportunity/{opp_id}")
        await _wait_for(events, 4)
    first = events[0]
    assert first["channel"] == "/data/OpportunityChangeEvent"
    header = first["data"]["payload"]["ChangeEventHeader"]
    assert header["entityName"] == "Opportunity"
    assert header["recordIds"] == [opp_id]
    assert header["changeType"] == "CREATE"
    assert header["changeOrigin"] == "com/salesforce/api/rest/60.0;client=crosswalk"
    assert {"transactionKey", "commitTimestamp", "sequenceNumber", "commitUser"} <= set(header)
    assert first["data"]["payload"]["Name"] == "Events"
    by_type = {
        (e["channel"], e["data"]["payload"]["ChangeEventHeader"]["changeType"]): e for e in events
    }
    update = by_type[("/data/OpportunityChangeEvent", "UPDATE")]["data"]["payload"]
    assert set(update["ChangeEventHeader"]["changedFields"]) == {
        "StageName",
        "IsClosed",
        "IsWon",
        "LastModifiedDate",
    }
    assert update["IsWon"] is True
    account = by_type[("/data/AccountChangeEvent", "UPDATE")]["data"]["payload"]
    assert account["ChangeEventHeader"]["changeOrigin"].endswith(";client=portal")
    assert account["Billing_Status__c"] == "paid"
    assert ("/data/OpportunityChangeEvent", "DELETE") in by_type
    replay_ids = [e["data"]["event"]["replayId"] for e in events]
    assert len(set(replay_ids)) == 4


async def test_rolled_back_composite_publishes_nothing(tmp_path: Path) -> None:
    secret = "crm_test_secret"
    async with (
        receiver(secret) as (hook_url, events, _arrived),
        running(tmp_path, webhook_url=hook_url, webhook_secret=secret) as (api, _),
    ):
        subrequests = [
            {
                "method": "POST",
                "url": f"{BASE}/sobjects/Account",
                "referenceId": "a",
                "body": {"Name": "Never"},
            },
            {
                "method": "POST",
                "url": f"{BASE}/sobjects/Account",
                "referenceId": "b",
                "body": {"Name": None},
            },
        ]
        await api.post("/composite", json={"allOrNone": True, "compositeRequest": subrequests})
        # a later, successful write: once its event arrives, the earlier one would have too
        await api.post("/sobjects/Account", json={"Name": "Marker"})
        await _wait_for(events, 1)
    assert [e["data"]["payload"]["Name"] for e in events] == ["Marker"]


# ---------------------------------------------------------------- a real client library


class _PlainHttp(requests.adapters.HTTPAdapter):
    """simple-salesforce always builds https:// URLs; the sandbox serves plain HTTP."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        assert request.url is not None
        request.url = "http://" + request.url.removeprefix("https://")
        return super().send(request, **kwargs)


async def test_simple_salesforce_works_against_the_sandbox(tmp_path: Path) -> None:
    simple_salesforce = pytest.importorskip("simple_salesforce")

    def use_client(instance: str) -> dict[str, Any]:
        session = requests.Session()
        session.mount("https://", _PlainHttp())
        sf = simple_salesforce.Salesforce(
            instance=instance, session_id=TOKEN, version="60.0", session=session
        )
        first = sf.query("SELECT Id, Name FROM Account ORDER BY Name")
        everything = sf.query_all("SELECT Id FROM Opportunity")
        created = sf.Account.upsert("ERP_Customer_Id__c/1999555", {"Name": "Client Lib GmbH"})
        updated = sf.Account.upsert("ERP_Customer_Id__c/1999555", {"Industry": "Energy"})
        by_xref = sf.Account.get_by_custom_id("ERP_Customer_Id__c", "1999555")
        record = sf.Account.get(by_xref["Id"])
        described = sf.Opportunity.describe()
        try:
            sf.query("SELECT Id FROM Account WHERE Name = 'x' OR Name LIKE '%")
        except simple_salesforce.exceptions.SalesforceMalformedRequest as exc:
            malformed = exc.content
        sf.session.close()
        return {
            "first": first,
            "everything": everything,
            "created": created,
            "updated": updated,
            "record": record,
            "described": described,
            "malformed": malformed,
            "usage": sf.api_usage,
        }

    async with running(tmp_path, app_options={"batch_size": 7}) as (api, _):
        instance = str(api.base_url.netloc.decode())
        result = await anyio.to_thread.run_sync(use_client, instance)
    assert result["first"]["totalSize"] == CUSTOMERS
    assert result["everything"]["totalSize"] == len(OPPS)
    assert len(result["everything"]["records"]) == len(OPPS)  # walked every batch of 7
    assert (result["created"], result["updated"]) == (201, 200)
    assert result["record"]["Name"] == "Client Lib GmbH"
    assert result["record"]["Industry"] == "Energy"
    assert "StageName" in {f["name"] for f in result["described"]["fields"]}
    assert result["malformed"][0]["errorCode"] == "MALFORMED_QUERY"
    assert result["usage"]["api-usage"].used > 0


# ---------------------------------------------------------------- replication


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_updated_and_deleted_follow_the_replication_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(tmp_path) as (api, root):
        began = datetime.now(UTC).replace(second=0, microsecond=0)
        account = (await api.post("/sobjects/Account", json={"Name": "Feed GmbH"})).json()["id"]
        contact = await api.post(
            "/sobjects/Contact", json={"LastName": "Gone", "AccountId": account}
        )
        opp_id = OPPS[0][1].id
        assert (
            await api.patch(f"/sobjects/Opportunity/{opp_id}", json={"Name": "Fed renewal"})
        ).status_code == 204
        assert (await api.delete(f"/sobjects/Contact/{contact.json()['id']}")).status_code == 204

        # the current minute is never covered yet: move the clock two minutes on
        later = datetime.now(UTC) + timedelta(minutes=2)
        monkeypatch.setattr("sandbox.crm.api._now", lambda: later)
        covered = later.replace(second=0, microsecond=0)
        window = {"start": _iso(began - timedelta(minutes=1)), "end": _iso(later + timedelta(1))}

        updated = await api.get("/sobjects/Account/updated/", params=window)
        assert updated.status_code == 200, updated.text
        assert updated.json() == {
            "ids": [account],
            "latestDateCovered": covered.strftime("%Y-%m-%dT%H:%M:00.000+0000"),
        }
        opps = (await api.get("/sobjects/Opportunity/updated/", params=window)).json()
        assert opps["ids"] == [opp_id]
        gone = (await api.get("/sobjects/Contact/deleted/", params=window)).json()
        assert set(gone) == {"deletedRecords", "earliestDateAvailable", "latestDateCovered"}
        assert [r["id"] for r in gone["deletedRecords"]] == [contact.json()["id"]]
        assert gone["deletedRecords"][0]["deletedDate"].endswith("+0000")
        assert gone["earliestDateAvailable"] <= gone["deletedRecords"][0]["deletedDate"]
        assert gone["latestDateCovered"] == updated.json()["latestDateCovered"]

        # seconds are ignored: an end inside the minute the changes fell in covers none
        same_minute = {"start": window["start"], "end": _iso(began + timedelta(seconds=59))}
        rounded = (await api.get("/sobjects/Account/updated/", params=same_minute)).json()
        assert rounded == {
            "ids": [],
            "latestDateCovered": began.strftime("%Y-%m-%dT%H:%M:00.000+0000"),
        }
        # restarting from latestDateCovered: what came before is not repeated
        after = {"start": _iso(covered), "end": _iso(later + timedelta(1))}
        assert (await api.get("/sobjects/Account/updated/", params=after)).json()["ids"] == []

        # deleting an account logs its contacts and opportunities too
        await api.delete(f"/sobjects/Account/{account}")
        logged = (await api.get("/sobjects/Account/deleted/", params=window)).json()
        assert [r["id"] for r in logged["deletedRecords"]] == [account]

        _error(await api.get("/sobjects/Account/updated/"), 400, "MISSING_ARGUMENT")
        _error(
            await api.get("/sobjects/Account/deleted/", params={"start": window["start"]}),
            400,
            "MISSING_ARGUMENT",
        )
        old = {"start": _iso(began - timedelta(days=31)), "end": window["end"]}
        _error(
            await api.get("/sobjects/Account/updated/", params=old), 400, "INVALID_REPLICATION_DATE"
        )
        backwards = {"start": window["end"], "end": window["start"]}
        _error(
            await api.get("/sobjects/Account/deleted/", params=backwards),
            400,
            "INVALID_REPLICATION_DATE",
        )
        junk = {"start": "yesterday", "end": window["end"]}
        _error(
            await api.get("/sobjects/Account/updated/", params=junk),
            400,
            "INVALID_REPLICATION_DATE",
        )
        _error(await api.get("/sobjects/Nope/updated/", params=window), 404, "NOT_FOUND")
        _error(
            await api.post("/sobjects/Account/updated/", params=window), 405, "METHOD_NOT_ALLOWED"
        )

        stats = (await root.get("/_sandbox/stats")).json()
        assert stats["by_route"][f"GET {BASE}/sobjects/Account/updated/"] >= 3


async def test_soql_filters_and_orders_by_system_modstamp(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):
        began = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
        first = (await api.post("/sobjects/Account", json={"Name": "Stamp One"})).json()["id"]
        await anyio.sleep(0.01)  # distinct milliseconds for the order below
        second = (await api.post("/sobjects/Account", json={"Name": "Stamp Two"})).json()["id"]
        await api.patch(f"/sobjects/Account/{first}", json={"BillingCity": "Touched"})
        since = _iso(began)
        newer = await _query_all(
            api,
            f"SELECT Id, SystemModstamp FROM Account WHERE SystemModstamp > {since} "
            "ORDER BY SystemModstamp",
        )
        assert [r["Id"] for r in newer] == [second, first]
        stamps = [r["SystemModstamp"] for r in newer]
        assert stamps == sorted(stamps)
        at_least = await _query_all(
            api,
            f"SELECT Id FROM Account WHERE SystemModstamp >= {since} ORDER BY SystemModstamp DESC",
        )
        assert [r["Id"] for r in at_least] == [first, second]
        older = await _query_all(api, f"SELECT Id FROM Account WHERE SystemModstamp < {since}")
        assert older
        assert {first, second}.isdisjoint(r["Id"] for r in older)
