"""The CRM connector's reads against the real CRM sandbox: batches, paging, search and SOQL
quoting.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import actors.crm.mapping
from actors.crm import soql_like, soql_quote
from actors.errors import (
    Conflict,
    NotFound,
)
from actors.messages import (
    FindCustomerByXRef,
    FindCustomers,
    GetCustomers,
    GetOpportunities,
    GetOpportunity,
    ListCustomers,
)
from canonical import Customer, Opportunity, System, XRef
from tests.actors.crm.helpers import BASE, CUSTOMERS, DEMO, _routes, running

pytestmark = pytest.mark.anyio


INJECTIONS = [
    "x' OR Name LIKE '%",
    "' OR Id != null OR Name = '",
    "\\' OR Name LIKE '%",
    "%",
    "_",
    "\\",
    "'",
    "a\\",
    "x\nOR Name != null",
    "') OR (Name LIKE '%",
]


def _expected(company: Any) -> Customer:
    return Customer(
        system=System.CRM,
        id=company.crm_id,
        name=company.crm_name or company.name,
        xref=XRef(erp=company.bp, crm=company.crm_id),
        tax_id=company.tax_id,
        country=company.country,
        payment_terms=company.crm_payment_terms or company.payment_terms,
        currency=company.currency,
        email=company.email,
        segment=company.segment,
        industry=company.industry,
        owner=company.owner,
    )


def _without_time(customer: Customer) -> Customer:
    assert customer.updated_at is not None
    return dataclasses.replace(customer, updated_at=None)


async def test_get_customers_reads_a_batch_in_one_call(tmp_path: Path) -> None:
    async with running(tmp_path) as (crm, root):
        ids = tuple(c.crm_id for c in DEMO.companies)
        found = await crm.handle(GetCustomers((*ids, "001Dn0000ZZZZZZAAQ", ids[0][:15])))
        assert isinstance(found, dict)
        assert set(found) == {*ids, ids[0][:15]}
        for company in DEMO.companies:
            assert _without_time(found[company.crm_id]) == _expected(company)
        assert found[ids[0][:15]].id == ids[0]
        routes = await _routes(root)
        assert routes == {f"POST {BASE}/composite": 1}  # accounts and contacts together


async def test_get_customers_chunks_long_id_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actors.crm.mapping, "CHUNK", 7)
    async with running(tmp_path) as (crm, root):
        ids = tuple(c.crm_id for c in DEMO.companies)
        found = await crm.handle(GetCustomers(ids + ids[:3]))  # repeats are asked once
        assert isinstance(found, dict)
        assert len(found) == CUSTOMERS
        assert (await _routes(root)) == {f"POST {BASE}/composite": 3}


async def test_get_opportunities_batches_and_walks_next_records_url(tmp_path: Path) -> None:
    async with running(tmp_path, app_options={"batch_size": 4}) as (crm, root):
        ids = tuple(c.crm_id for c in DEMO.companies)
        grouped = await crm.handle(GetOpportunities(ids))
        assert isinstance(grouped, dict)
        total = sum(len(c.opportunities) for c in DEMO.companies)
        assert sum(len(v) for v in grouped.values()) == total
        for company in DEMO.companies:
            got = {o.id: o for o in grouped[company.crm_id]}
            assert set(got) == {o.id for o in company.opportunities}
            for demo_opp in company.opportunities:
                opp = got[demo_opp.id]
                assert opp.account_id == company.crm_id
                assert (opp.stage, opp.is_won, opp.is_closed) == (
                    demo_opp.stage,
                    demo_opp.is_won,
                    demo_opp.is_closed,
                )
                assert opp.amount == demo_opp.amount
                assert opp.close_date == demo_opp.close_date
                assert opp.products == demo_opp.products
                assert opp.erp_order_number == demo_opp.erp_order
        routes = await _routes(root)
        assert routes[f"GET {BASE}/query"] == 1
        pages = sum(n for r, n in routes.items() if r.startswith(f"GET {BASE}/query/"))
        assert pages == -(-total // 4) - 1  # every further batch through nextRecordsUrl


async def test_get_opportunity_and_not_found(tmp_path: Path) -> None:
    demo_opp = DEMO.companies[2].opportunities[0]
    async with running(tmp_path) as (crm, _):
        opp = await crm.handle(GetOpportunity(demo_opp.id))
        assert isinstance(opp, Opportunity)
        assert (opp.id, opp.name, opp.amount) == (demo_opp.id, demo_opp.name, demo_opp.amount)
        with pytest.raises(NotFound) as caught:
            await crm.handle(GetOpportunity("006Dn0000ZZZZZZAAQ"))
        assert caught.value.system == "crm"
        assert caught.value.details["errorCode"] == "NOT_FOUND"


async def test_find_customers_by_name_fragment(tmp_path: Path) -> None:
    async with running(tmp_path) as (crm, _):
        fragment = "BRIDGE"
        found = await crm.handle(FindCustomers(fragment, limit=50))
        assert isinstance(found, tuple)
        expected = sorted(
            (
                c.crm_name or c.name
                for c in DEMO.companies
                if "bridge" in (c.crm_name or c.name).lower()
            ),
            key=str.casefold,
        )
        assert [c.name for c in found] == expected
        assert all(c.email for c in found)
        limited = await crm.handle(FindCustomers("a", limit=2))
        assert isinstance(limited, tuple)
        assert len(limited) == 2


async def test_list_customers_pages_by_id(tmp_path: Path) -> None:
    async with running(tmp_path) as (crm, _):
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            page = await crm.handle(ListCustomers(cursor=cursor, limit=7))
            seen.extend(c.id for c in page.items)  # type: ignore[attr-defined]
            cursor = page.next_cursor  # type: ignore[attr-defined]
            if cursor is None:
                break
        assert sorted(seen) == sorted(c.crm_id for c in DEMO.companies)
        assert len(seen) == len(set(seen))


async def test_find_customer_by_xref(tmp_path: Path) -> None:
    company = DEMO.companies[6]
    async with running(tmp_path) as (crm, root):
        found = await crm.handle(FindCustomerByXRef(company.bp))
        assert isinstance(found, Customer)
        assert _without_time(found) == _expected(company)
        assert await crm.handle(FindCustomerByXRef("1999999")) is None
        assert await crm.handle(FindCustomerByXRef("a/b c'")) is None
        planted = await root.post(
            BASE + "/sobjects/Account",
            json={"Name": "Twin", "ERP_Customer_Id__c": company.bp},
            headers={"X-Sandbox-Allow-Duplicate": "true"},
        )
        assert planted.status_code == 201
        with pytest.raises(Conflict):
            await crm.handle(FindCustomerByXRef(company.bp))


# ---------------------------------------------------------------- SOQL escaping


def test_soql_quote_and_like_escape_what_soql_parses() -> None:
    assert soql_quote("O'Brien") == "'O\\'Brien'"
    assert soql_quote("a\\b") == "'a\\\\b'"
    assert soql_quote("line\nbreak") == "'line\\nbreak'"
    assert soql_like("100%_x") == "'%100\\%\\_x%'"
    assert soql_like("it's") == "'%it\\'s%'"


async def test_escaped_injections_stay_literal_in_the_real_parser(tmp_path: Path) -> None:
    async with running(tmp_path) as (crm, root):
        for text in INJECTIONS:
            for soql in (
                f"SELECT Id FROM Account WHERE Name = {soql_quote(text)}",
                f"SELECT Id FROM Account WHERE Name LIKE {soql_like(text)}",
            ):
                response = await root.get(BASE + "/query", params={"q": soql})
                assert response.status_code == 200, (text, response.text)
                assert response.json()["records"] == [], text
            assert await crm.handle(FindCustomers(text)) == ()
        # and each finds exactly the account that carries it
        for n, text in enumerate(INJECTIONS):
            name = f"Odd {n} {text}"
            created = await root.post(BASE + "/sobjects/Account", json={"Name": name})
            assert created.status_code == 201, created.text
            found = await crm.handle(FindCustomers(text))
            assert isinstance(found, tuple)
            assert created.json()["id"] in {c.id for c in found}, text
            assert all(text.casefold() in c.name.casefold() for c in found), text
            exact = await root.get(
                BASE + "/query",
                params={"q": f"SELECT Id FROM Account WHERE Name = {soql_quote(name)}"},
            )
            assert [r["Id"] for r in exact.json()["records"]] == [created.json()["id"]]
        # unescaped, the same text rewrites the query: it leaks every account, or breaks it
        naive = await root.get(
            BASE + "/query",
            params={"q": f"SELECT Id FROM Account WHERE Name LIKE '%{INJECTIONS[0]}%'"},
        )
        assert naive.json()["totalSize"] == CUSTOMERS + len(INJECTIONS)
        broken = await root.get(
            BASE + "/query",
            params={"q": f"SELECT Id FROM Account WHERE Name = '{INJECTIONS[-1]}'"},
        )
        assert broken.status_code == 400
        assert broken.json()[0]["errorCode"] == "MALFORMED_QUERY"


def test_amounts_are_exact_decimals() -> None:
    record = {
        "Id": "006x",
        "AccountId": "001x",
        "Name": "n",
        "StageName": "Closed Won",
        "Amount": 1200.1,
        "CloseDate": "2026-01-31",
        "IsClosed": True,
        "IsWon": True,
        "Products__c": "CW-CORE;CW-SEAT",
    }
    opp = actors.crm.mapping.to_opportunity(record)
    assert opp.amount == Decimal("1200.1")
    assert opp.products == ("CW-CORE", "CW-SEAT")
