"""The CRM sandbox's SOQL queries: paging, filters, ordering, literals and the vendor's error
codes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.sandbox.crm.helpers import (
    BASE,
    CUSTOMERS,
    DEMO,
    OPPS,
    _count,
    _error,
    _iso,
    _query,
    _query_all,
    running,
)

pytestmark = pytest.mark.anyio


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
