"""The CRM connector's initial loads through Bulk API 2.0 query jobs, against the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actors.crm import FIELD_TYPES, CrmConnector
from actors.crm.bulk import CsvError, rows_from_csv
from actors.errors import SystemUnavailable
from actors.messages import ChangePage, GetChanges
from tests.actors.crm.helpers import BASE, CUSTOMERS, DEMO, _routes, running

pytestmark = pytest.mark.anyio

OPPORTUNITIES = sum(len(c.opportunities) for c in DEMO.companies)


async def _changes(crm: CrmConnector, feed: str, cursor: str | None = None) -> ChangePage:
    page = await crm.handle(GetChanges(feed, cursor))
    assert isinstance(page, ChangePage)
    return page


def _since(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


def _jobs(routes: dict[str, int], method: str) -> int:
    return sum(n for route, n in routes.items() if route.startswith(f"{method} {BASE}/jobs/"))


@pytest.mark.parametrize("feed", ["opportunities", "customers"])
async def test_initial_load_through_a_bulk_job_equals_the_soql_listing(
    tmp_path: Path, feed: str
) -> None:
    async with running(tmp_path) as (crm, root):
        by_soql = await _changes(crm, feed)  # 20 accounts: under the threshold
        routes = await _routes(root)
        assert not any("/jobs/" in route for route in routes)
        crm.bulk_above = 0
        by_bulk = await _changes(crm, feed)
        routes = _since(routes, await _routes(root))
    assert len(by_bulk.records) == len(by_soql.records)
    assert len(by_bulk.records) == (CUSTOMERS if feed == "customers" else OPPORTUNITIES)
    assert {r.id: r for r in by_bulk.records} == {r.id: r for r in by_soql.records}
    assert by_bulk.cursor == by_soql.cursor
    if feed == "customers":  # every billing contact's email made it through the join
        emails = {r.id: getattr(r.value, "email", None) for r in by_bulk.records}
        assert emails == {c.crm_id: c.email for c in DEMO.companies}
    # one job per object read (accounts and their contacts for customers), each deleted
    jobs = 2 if feed == "customers" else 1
    assert routes[f"POST {BASE}/jobs/query"] == jobs
    assert _jobs(routes, "DELETE") == jobs
    assert f"POST {BASE}/composite" not in routes


async def test_bulk_rows_are_the_soql_rows(tmp_path: Path) -> None:
    async with running(tmp_path) as (crm, root):
        soql = (
            "SELECT Id, Name, Amount, IsClosed, IsWon, CloseDate, SystemModstamp FROM Opportunity"
        )
        bulk = await crm._bulk_query(soql)
        rest = await crm._query(soql)
        jobs = (await root.get(f"{BASE}/jobs/query")).json()["records"]
    assert bulk == [{k: v for k, v in r.items() if k != "attributes"} for r in rest]
    assert jobs == []  # deleted once read


async def test_incremental_reads_stay_on_soql(tmp_path: Path) -> None:
    async with running(tmp_path) as (crm, root):
        crm.bulk_above = 0
        first = await _changes(crm, "opportunities")
        before = await _routes(root)
        later = await _changes(crm, "opportunities", first.cursor)
        routes = _since(before, await _routes(root))
    assert _jobs(routes, "GET") == _jobs(routes, "POST") == 0
    assert all(r.id in {f.id for f in first.records} for r in later.records)


async def test_a_job_that_does_not_complete_in_time_fails_retryably_and_is_deleted(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, app_options={"bulk_polls": 1_000_000}) as (crm, root):
        crm.bulk_above = 0
        crm.bulk_wait = 0.3
        with pytest.raises(SystemUnavailable, match="did not complete within 0.3 s") as caught:
            await _changes(crm, "opportunities")
        assert caught.value.retryable
        routes = await _routes(root)
        jobs = (await root.get(f"{BASE}/jobs/query")).json()["records"]
    assert jobs == []  # aborted, then deleted
    assert routes[f"POST {BASE}/jobs/query"] == 1
    polls = _jobs(routes, "GET")
    assert 2 <= polls <= 6  # a doubling pause from 50 ms, not a busy loop
    assert _jobs(routes, "PATCH") == 1
    assert _jobs(routes, "DELETE") == 1


async def test_bulk_results_page_by_the_locator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("actors.crm.paging.BULK_PAGE", 4)
    async with running(tmp_path) as (crm, root):
        crm.bulk_above = 0
        page = await _changes(crm, "opportunities")
        routes = await _routes(root)
    assert len(page.records) == OPPORTUNITIES
    results = sum(n for route, n in routes.items() if route.endswith("/results"))
    assert results == -(-OPPORTUNITIES // 4)


def test_rows_from_csv_types_quoting_and_nesting() -> None:
    body = (
        b'"Id","Name","Amount","IsWon","SystemModstamp","Account.Name"\n'
        b'"006A","Quote ""Q"", Comma\nand newline","12.5","true","2026-11-01T09:00:00.000Z",'
        b'"Acme"\n'
        b'"006B","","","false","",""\n'
    )
    rows = rows_from_csv(body, FIELD_TYPES)
    assert rows == [
        {
            "Id": "006A",
            "Name": 'Quote "Q", Comma\nand newline',
            "Amount": 12.5,
            "IsWon": True,
            "SystemModstamp": "2026-11-01T09:00:00.000+0000",
            "Account": {"Name": "Acme"},
        },
        {
            "Id": "006B",
            "Name": None,
            "Amount": None,
            "IsWon": False,
            "SystemModstamp": None,
            "Account": None,
        },
    ]
    assert rows_from_csv(b'"Amount"\n"7"\n', FIELD_TYPES) == [{"Amount": 7}]


@pytest.mark.parametrize(
    "body",
    [b"", b'"Id","Name"\n"1"\n', b'"IsWon"\n"maybe"\n', b'"Amount"\n"lots"\n', b"\xff\xfe"],
)
def test_rows_from_csv_refuses_what_is_not_query_results(body: bytes) -> None:
    types: dict[str, Any] = dict(FIELD_TYPES)
    with pytest.raises(CsvError):
        rows_from_csv(body, types)
