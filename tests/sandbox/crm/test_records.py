"""The CRM sandbox's sObject records: create, read, update, delete, validation rules, upsert by
external id and the demo world.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from tests.sandbox.crm.helpers import (
    BASE,
    CUSTOMERS,
    DEMO,
    OPPS,
    _count,
    _error,
    _query,
    _query_all,
    running,
)

pytestmark = pytest.mark.anyio


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
