"""The CRM sandbox's Bulk API 2.0 query jobs (``/jobs/query``) over real HTTP on loopback."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sandbox.crm.helpers import BASE, OPPS, _error, _query_all, running

pytestmark = pytest.mark.anyio

JOB = {
    "operation": "query",
    "contentType": "CSV",
    "columnDelimiter": "COMMA",
    "lineEnding": "LF",
}


async def _create(api: httpx.AsyncClient, soql: str, **options: str) -> dict[str, Any]:
    response = await api.post("/jobs/query", json={**JOB, **options, "query": soql})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _complete(api: httpx.AsyncClient, job_id: str) -> list[str]:
    states: list[str] = []
    for _ in range(10):
        info = (await api.get(f"/jobs/query/{job_id}")).json()
        states.append(info["state"])
        if info["state"] == "JobComplete":
            return states
    raise AssertionError(f"job {job_id} never completed: {states}")


def _rows(text: str, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


async def test_a_query_job_moves_to_complete_and_pages_its_csv(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, root):
        soql = "SELECT Id, Name, Amount, IsWon, CloseDate, Account.Name FROM Opportunity"
        job = await _create(api, soql)
        assert job["id"].startswith("750")
        assert len(job["id"]) == 18
        assert job["state"] == "UploadComplete"
        assert job["object"] == "Opportunity"
        assert job["operation"] == "query"
        assert job["apiVersion"] == 60.0
        assert job["concurrencyMode"] == "Parallel"
        assert (job["contentType"], job["lineEnding"], job["columnDelimiter"]) == (
            "CSV",
            "LF",
            "COMMA",
        )
        assert {"createdById", "createdDate", "systemModstamp"} <= set(job)
        # results before the job completes: refused in the vendor's error array
        _error(await api.get(f"/jobs/query/{job['id']}/results"), 400, "JOB_NOT_COMPLETE")
        assert await _complete(api, job["id"]) == ["InProgress", "JobComplete"]
        info = (await api.get(f"/jobs/query/{job['id']}")).json()
        assert info["numberRecordsProcessed"] == len(OPPS)
        assert info["retries"] == 0
        assert isinstance(info["totalProcessingTime"], int)

        expected = await _query_all(api, soql)
        seen: list[list[str]] = []
        locator: str | None = None
        pages = 0
        while True:
            params = {"maxRecords": "7", **({"locator": locator} if locator else {})}
            page = await api.get(f"/jobs/query/{job['id']}/results", params=params)
            assert page.status_code == 200, page.text
            assert page.headers["content-type"].startswith("text/csv")
            rows = _rows(page.text)
            assert rows[0] == ["Id", "Name", "Amount", "IsWon", "CloseDate", "Account.Name"]
            assert int(page.headers["Sforce-NumberOfRecords"]) == len(rows) - 1 <= 7
            assert page.headers["Sforce-Limit-Info"].startswith("api-usage=")
            seen.extend(rows[1:])
            pages += 1
            locator = page.headers["Sforce-Locator"]
            if locator == "null":
                break
        assert pages == -(-len(OPPS) // 7)
        assert [r[0] for r in seen] == [r["Id"] for r in expected]
        by_id = {r["Id"]: r for r in expected}
        for row in seen:
            record = by_id[row[0]]
            assert row[1] == record["Name"]
            assert float(row[2]) == record["Amount"]
            assert row[3] == ("true" if record["IsWon"] else "false")
            assert row[4] == (record["CloseDate"] or "")
            assert row[5] == record["Account"]["Name"]
        # every value is quoted, as Salesforce writes them
        first = await api.get(f"/jobs/query/{job['id']}/results", params={"maxRecords": "1"})
        assert first.text.startswith('"Id","Name","Amount","IsWon","CloseDate","Account.Name"\n')
        # a locator reads its set again, as long as the job lives
        again = await api.get(
            f"/jobs/query/{job['id']}/results",
            params={"maxRecords": "1", "locator": first.headers["Sforce-Locator"]},
        )
        assert _rows(again.text)[1] == seen[1]
        _error(
            await api.get(f"/jobs/query/{job['id']}/results", params={"locator": "!!"}),
            400,
            "INVALIDJOB",
        )

        listed = (await api.get("/jobs/query")).json()
        assert listed["done"] is True
        assert [j["id"] for j in listed["records"]] == [job["id"]]
        assert (await api.delete(f"/jobs/query/{job['id']}")).status_code == 204
        _error(await api.get(f"/jobs/query/{job['id']}"), 404, "NOT_FOUND")
        assert (await api.get("/jobs/query")).json()["records"] == []

        routes = (await root.get("/_sandbox/stats")).json()["by_route"]
        assert routes[f"POST {BASE}/jobs/query"] == 1
        assert routes[f"GET {BASE}/jobs/query/{job['id']}/results"] >= pages


async def test_csv_quoting_nulls_delimiters_and_line_endings(tmp_path: Path) -> None:
    async with running(tmp_path, app_options={"bulk_polls": 1}) as (api, _):
        tricky = 'Quote "Q", Comma\nand newline'
        made = await api.post("/sobjects/Account", json={"Name": tricky})
        account = made.json()["id"]
        soql = f"SELECT Id, Name, Industry, SystemModstamp FROM Account WHERE Id = '{account}'"
        job = await _create(api, soql, columnDelimiter="PIPE", lineEnding="CRLF")
        assert await _complete(api, job["id"]) == ["JobComplete"]  # one poll: bulk_polls=1
        page = await api.get(f"/jobs/query/{job['id']}/results")
        assert page.headers["Sforce-Locator"] == "null"
        assert page.headers["Sforce-NumberOfRecords"] == "1"
        assert page.text.startswith('"Id"|"Name"|"Industry"|"SystemModstamp"\r\n')
        rows = _rows(page.text, "|")
        assert rows[1][:3] == [account, tricky, ""]  # RFC 4180 round trip; null is empty
        assert rows[1][3].endswith("Z")  # Bulk API datetimes are UTC with a Z


async def test_unsupported_queries_and_bad_jobs_are_refused(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):

        async def refused(body: dict[str, Any], code: str) -> None:
            _error(await api.post("/jobs/query", json=body), 400, code)

        await refused(
            {**JOB, "query": "SELECT Id, (SELECT Id FROM Opportunities) FROM Account"},
            "INVALIDJOB",
        )
        await refused({**JOB, "query": "SELECT COUNT() FROM Account"}, "INVALIDJOB")
        await refused({**JOB, "query": "SELECT Id FROM Account OFFSET 5"}, "INVALIDJOB")
        await refused({**JOB, "query": "SELECT Nope__c FROM Account"}, "API_ERROR")
        await refused({**JOB, "query": "SELEC Id FROM Account"}, "API_ERROR")
        await refused(
            {**JOB, "operation": "upsert", "query": "SELECT Id FROM Account"}, "INVALIDJOB"
        )
        await refused(
            {**JOB, "columnDelimiter": "EMOJI", "query": "SELECT Id FROM Account"}, "INVALIDJOB"
        )
        await refused({**JOB, "query": ""}, "INVALIDJOB")
        _error(await api.get("/jobs/query/750SB0000000999AAQ"), 404, "NOT_FOUND")
        _error(await api.put("/jobs/query", json={}), 405, "METHOD_NOT_ALLOWED")


async def test_query_all_abort_and_delete_rules(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):
        job = await _create(api, "SELECT Id FROM Account", operation="queryAll")
        assert job["operation"] == "queryAll"
        assert (await api.get(f"/jobs/query/{job['id']}")).json()["state"] == "InProgress"
        # an InProgress job must be aborted before it can be deleted
        _error(await api.delete(f"/jobs/query/{job['id']}"), 400, "INVALIDJOBSTATE")
        _error(
            await api.patch(f"/jobs/query/{job['id']}", json={"state": "Open"}), 400, "INVALIDJOB"
        )
        aborted = await api.patch(f"/jobs/query/{job['id']}", json={"state": "Aborted"})
        assert aborted.status_code == 200
        assert aborted.json()["state"] == "Aborted"
        assert (await api.get(f"/jobs/query/{job['id']}")).json()["state"] == "Aborted"
        _error(await api.get(f"/jobs/query/{job['id']}/results"), 400, "JOB_NOT_COMPLETE")
        assert (await api.delete(f"/jobs/query/{job['id']}")).status_code == 204

        done = await _create(api, "SELECT Id FROM Account")
        await _complete(api, done["id"])
        again = await api.patch(f"/jobs/query/{done['id']}", json={"state": "Aborted"})
        _error(again, 400, "INVALIDJOBSTATE")


async def test_jobs_need_auth_and_answer_chaos_in_the_vendor_dialect(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, root):
        bare = httpx.AsyncClient(base_url=str(api.base_url))
        async with bare:
            _error(await bare.get("/jobs/query"), 401, "INVALID_SESSION_ID")
        job = await _create(api, "SELECT Id FROM Account")
        await root.put("/_sandbox/chaos", json={"error_rate": 1.0})
        _error(await api.get(f"/jobs/query/{job['id']}"), 500, "UNKNOWN_EXCEPTION")
        await root.put("/_sandbox/chaos", json={"error_rate": 0.0})
        await _complete(api, job["id"])
        # a reseed forgets the jobs, as it forgets query cursors
        assert (await root.post("/_sandbox/reset")).status_code in (200, 204)
        _error(await api.get(f"/jobs/query/{job['id']}"), 404, "NOT_FOUND")
