"""The CRM connector's writes against the real CRM sandbox: ensure and update, each with one
effect.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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

from actors.errors import (
    NotFound,
    Rejected,
)
from actors.messages import (
    EnsureCustomer,
    UpdateCustomer,
    UpdateOpportunity,
)
from canonical import Customer, Opportunity, System, XRef
from tests.actors.crm.helpers import BASE, CUSTOMERS, DEMO, _routes, running
from tests.servers import serve

pytestmark = pytest.mark.anyio


async def _count(root: httpx.AsyncClient, soql: str) -> int:
    body = (await root.get(BASE + "/query", params={"q": soql})).json()
    return int(body["totalSize"])


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
