"""The CRM connector against the real CRM sandbox (Salesforce REST v60.0) on loopback."""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
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

import actors.crm.mapping
from actors.connector import Endpoint
from actors.crm import THROTTLE_PAUSE, CrmConnector, soql_like, soql_quote
from actors.errors import (
    Conflict,
    MalformedResponse,
    NotFound,
    Rejected,
    SystemTimeout,
    SystemUnavailable,
    Throttled,
)
from actors.messages import (
    EnsureCustomer,
    FindCustomerByXRef,
    FindCustomers,
    GetCustomers,
    GetOpportunities,
    GetOpportunity,
    GetOrders,
    ListCustomers,
    UpdateCustomer,
    UpdateOpportunity,
)
from canonical import Customer, Opportunity, System, XRef
from sandbox.app import SandboxConfig
from sandbox.crm import create_app
from sandbox.demo import generate
from tests.servers import serve

pytestmark = pytest.mark.anyio

TOKEN = "00DSANDBOX!crosswalk"
BASE = "/services/data/v60.0"
CUSTOMERS = 20
DEMO = generate(CUSTOMERS, 42)
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


@asynccontextmanager
async def running(
    tmp_path: Path,
    *,
    token: str = TOKEN,
    call_timeout: float = 5.0,
    app_options: dict[str, Any] | None = None,
    **changes: Any,
) -> AsyncIterator[tuple[CrmConnector, httpx.AsyncClient]]:
    """(an open connector, a client on the sandbox root carrying the token)."""
    config = SandboxConfig.for_system(
        "crm", data_dir=tmp_path, gateway_url=None, customers=CUSTOMERS
    )
    app = create_app(dataclasses.replace(config, **changes), **(app_options or {}))
    async with serve(app) as url:
        endpoint = Endpoint(
            url, {"access_token": token}, timeout=call_timeout, client_name="crosswalk-test"
        )
        async with (
            CrmConnector(endpoint) as connector,
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as root,
        ):
            yield connector, root


async def _routes(root: httpx.AsyncClient) -> dict[str, int]:
    routes: dict[str, int] = (await root.get("/_sandbox/stats")).json()["by_route"]
    return routes


async def _count(root: httpx.AsyncClient, soql: str) -> int:
    body = (await root.get(BASE + "/query", params={"q": soql})).json()
    return int(body["totalSize"])


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


# ---------------------------------------------------------------- reads


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


# ---------------------------------------------------------------- writes


@asynccontextmanager
async def receiver(secret: str) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    events: list[dict[str, Any]] = []

    async def hook(request: Request) -> Response:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, f"Bearer {secret}".encode()):
            return Response(status_code=401)
        events.append(orjson.loads(await request.body()))
        return Response(status_code=200)

    async with serve(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as url:
        yield url + "/hook", events


async def test_ensure_customer_is_idempotent_and_names_its_client(tmp_path: Path) -> None:
    customer = Customer(
        system=System.ERP,
        id="1999100",
        name="Northwind Traders GmbH",
        xref=XRef(erp="1999100"),
        tax_id="DE123456789",
        country="DE",
        payment_terms="NT30",
        currency="EUR",
        email="ap@northwind.example.com",
        segment="SMB",
        industry="Retail",
    )
    async with (
        receiver("s3cret") as (hook, events),
        running(tmp_path, webhook_url=hook, webhook_secret="s3cret") as (crm, root),
    ):
        first = await crm.handle(EnsureCustomer("op-1:crm", customer=customer, external_id="x"))
        again = await crm.handle(EnsureCustomer("op-1:crm", customer=customer, external_id="x"))
        assert isinstance(first, Customer)
        assert isinstance(again, Customer)
        assert first.id == again.id
        assert first.id.startswith("001")
        assert (first.name, first.xref.erp, first.payment_terms, first.email) == (
            "Northwind Traders GmbH",
            "1999100",
            "NT30",
            "ap@northwind.example.com",
        )
        assert (
            await _count(root, "SELECT COUNT() FROM Account WHERE ERP_Customer_Id__c = '1999100'")
            == 1
        )
        assert (
            await _count(
                root, "SELECT COUNT() FROM Contact WHERE Crosswalk_Key__c = '1999100-billing'"
            )
            == 1
        )
        assert (await _routes(root))[f"POST {BASE}/composite"] == 2
        with anyio.fail_after(10):
            while len(events) < 2:  # noqa: ASYNC110 - the receiver appends as events arrive
                await anyio.sleep(0.02)
    origins = {e["data"]["payload"]["ChangeEventHeader"]["changeOrigin"] for e in events}
    assert origins == {"com/salesforce/api/rest/60.0;client=crosswalk-test"}
    kinds = sorted(e["channel"] for e in events)
    assert kinds == ["/data/AccountChangeEvent", "/data/ContactChangeEvent"]  # one effect


async def test_ensure_customer_failures_change_nothing(tmp_path: Path) -> None:
    async with running(tmp_path) as (crm, root):
        nameless = Customer(System.ERP, "1", "X", xref=XRef())
        with pytest.raises(Rejected, match="xref.erp"):
            await crm.handle(EnsureCustomer("k", customer=nameless, external_id="x"))
        too_long = Customer(
            System.ERP, "1", "N" * 300, xref=XRef(erp="1999200"), email="a@b.example.com"
        )
        with pytest.raises(Rejected) as caught:
            await crm.handle(EnsureCustomer("k", customer=too_long, external_id="x"))
        assert caught.value.details["errorCode"] == "STRING_TOO_LONG"
        assert caught.value.details["fields"] == ["Name"]
        bad_email = Customer(System.ERP, "1", "Fine", xref=XRef(erp="1999201"), email="nope")
        with pytest.raises(Rejected):
            await crm.handle(EnsureCustomer("k", customer=bad_email, external_id="x"))
        # all or none: the account of the failed contact upsert was rolled back
        assert await _count(root, "SELECT COUNT() FROM Account") == CUSTOMERS


async def test_update_customer_patches_and_reads_back(tmp_path: Path) -> None:
    company = DEMO.companies[3]
    async with running(tmp_path) as (crm, root):
        updated = await crm.handle(
            UpdateCustomer(
                "op-2:crm",
                id=company.crm_id,
                changes={"name": "Renamed Ltd", "payment_terms": "NT45", "billing_status": "paid"},
            )
        )
        assert isinstance(updated, Customer)
        assert (updated.name, updated.payment_terms, updated.email) == (
            "Renamed Ltd",
            "NT45",
            company.email,
        )
        record = (await root.get(f"{BASE}/sobjects/Account/{company.crm_id}")).json()
        assert record["Billing_Status__c"] == "paid"
        with pytest.raises(Rejected, match="colour"):
            await crm.handle(UpdateCustomer("k", id=company.crm_id, changes={"colour": "red"}))
        with pytest.raises(NotFound):
            await crm.handle(UpdateCustomer("k", id="001Dn0000ZZZZZZAAQ", changes={"name": "x"}))
        with pytest.raises(Rejected) as caught:
            await crm.handle(UpdateCustomer("k", id=company.crm_id, changes={"name": None}))
        assert caught.value.details["errorCode"] == "REQUIRED_FIELD_MISSING"


async def test_update_opportunity_stamps_the_order_number(tmp_path: Path) -> None:
    opp_id = next(o.id for c in DEMO.companies for o in c.opportunities if not o.is_closed)
    async with running(tmp_path) as (crm, _):
        message = UpdateOpportunity(
            "op-3:crm",
            id=opp_id,
            fields={"StageName": "Closed Won", "ERP_Order_Number__c": "5009999"},
        )
        first = await crm.handle(message)
        second = await crm.handle(message)
        assert isinstance(first, Opportunity)
        assert (first.is_won, first.is_closed, first.erp_order_number) == (True, True, "5009999")
        assert second == first  # the repeat changed nothing, not even LastModifiedDate
        with pytest.raises(Rejected) as caught:
            await crm.handle(UpdateOpportunity("k", id=opp_id, fields={"Nope__c": "x"}))
        assert caught.value.details["errorCode"] == "INVALID_FIELD"
        with pytest.raises(NotFound):
            await crm.handle(UpdateOpportunity("k", id="006Dn0000ZZZZZZAAQ", fields={}))


# ---------------------------------------------------------------- error mapping


async def test_vendor_answers_map_to_named_errors(tmp_path: Path) -> None:
    ids = (DEMO.companies[0].crm_id,)
    async with running(tmp_path) as (crm, root):
        assert await crm.ping() > 0
        await root.put("/_sandbox/chaos", json={"throttle": True})
        with pytest.raises(Throttled) as throttled:
            await crm.handle(GetCustomers(ids))
        assert throttled.value.retry_after == THROTTLE_PAUSE
        assert throttled.value.status == 403
        await root.put("/_sandbox/chaos", json={"throttle": False, "outage": True})
        with pytest.raises(SystemUnavailable) as outage:
            await crm.handle(GetOpportunity(DEMO.companies[0].opportunities[0].id))
        assert outage.value.status == 503
        await root.put("/_sandbox/chaos", json={"outage": False, "error_rate": 1.0})
        with pytest.raises(SystemUnavailable) as failed:
            await crm.handle(GetCustomers(ids))
        assert failed.value.status == 500
        await root.put("/_sandbox/chaos", json={"error_rate": 0.0, "malformed_rate": 1.0})
        with pytest.raises(MalformedResponse):
            await crm.handle(GetCustomers(ids))
        with pytest.raises(MalformedResponse):
            await crm.handle(GetOpportunity(DEMO.companies[0].opportunities[0].id))
        await root.put("/_sandbox/chaos", json={"malformed_rate": 0.0})
        with pytest.raises(Rejected) as malformed:
            await crm._query("SELECT Id FROM Account WHERE Name = 'unbalanced")
        assert malformed.value.details["errorCode"] == "MALFORMED_QUERY"
        assert not malformed.value.retryable
        with pytest.raises(TypeError, match="GetOrders"):
            await crm.handle(GetOrders(("1000000",)))


async def test_daily_limit_is_throttled_and_a_bad_token_is_not_retryable(tmp_path: Path) -> None:
    async with running(tmp_path, app_options={"daily_limit": 1}) as (crm, _):
        await crm.ping()
        with pytest.raises(Throttled):
            await crm.ping()
    async with running(tmp_path / "other", token="00Dwrong") as (crm, _):
        with pytest.raises(SystemUnavailable) as caught:
            await crm.handle(FindCustomers("a"))
        assert caught.value.status == 401
        assert caught.value.retryable is False
        assert "access_token" in str(caught.value)


async def test_latency_past_the_timeout_is_a_system_timeout(tmp_path: Path) -> None:
    async with running(tmp_path, call_timeout=0.2) as (crm, root):
        await root.put("/_sandbox/chaos", json={"latency_ms": [600, 700]})
        with pytest.raises(SystemTimeout):
            await crm.ping()
        await root.put("/_sandbox/chaos", json={"latency_ms": [0, 0]})


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
