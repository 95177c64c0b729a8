"""The CRM sandbox's composite requests: references between subrequests and all-or-none rollback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sandbox.crm.helpers import BASE, DEMO, _count, running

pytestmark = pytest.mark.anyio


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
