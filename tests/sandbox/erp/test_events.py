"""The ERP sandbox's CloudEvents, pushed with the shared secret bearer."""

from __future__ import annotations

import hmac
from typing import Any

import anyio
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.sandbox.erp.helpers import BD, BP, NEW_PARTNER, csrf, erp
from tests.servers import serve

pytestmark = pytest.mark.anyio


async def test_cloudevents_are_pushed_with_the_shared_secret_bearer(tmp_path):
    secret = "erp-test-secret"
    received: list[dict[str, Any]] = []
    rejected: list[str] = []
    got_both = anyio.Event()

    async def hook(request: Request) -> Response:
        # independent verifier: SAP event delivery authenticates with a bearer token
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not hmac.compare_digest(token.encode(), secret.encode()):
            rejected.append(header)
            return Response(status_code=401)
        received.append(orjson.loads(await request.body()))
        if len(received) >= 2:
            got_both.set()
        return Response(status_code=204)

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with (
        serve(receiver) as hook_url,
        erp(tmp_path, webhook_url=f"{hook_url}/hook", secret=secret) as client,
    ):
        token = await csrf(client)
        headers = {"X-CSRF-Token": token}
        partner = await client.post(f"{BP}/A_BusinessPartner", json=NEW_PARTNER, headers=headers)
        assert partner.status_code == 201
        document = await client.post(
            f"{BD}/A_BillingDocument",
            json={
                "SoldToParty": "1000001",
                "PurchaseOrderByCustomer": "in_test",
                "TotalNetAmount": "100.00",
                "TaxAmount": "19.00",
            },
            headers=headers,
        )
        assert document.status_code == 201, document.text
        doc = document.json()["d"]
        assert doc["TotalGrossAmount"] == "119.00"
        assert doc["AccountingPostingStatus"] == "C"
        with anyio.fail_after(10):
            await got_both.wait()
    assert rejected == []
    assert len(received) == 2  # nothing from seeding, one event per API change
    by_type = {event["type"]: event for event in received}
    changed = by_type["sap.s4.beh.businesspartner.v1.BusinessPartner.Changed.v1"]
    assert changed["data"] == {"BusinessPartner": "1000020"}
    created = by_type["sap.s4.beh.billingdocument.v1.BillingDocument.Created.v1"]
    assert created["data"] == {"BillingDocument": doc["BillingDocument"]}
    for event in received:
        assert event["specversion"] == "1.0"
        assert event["datacontenttype"] == "application/json"
        assert event["source"]
        assert event["id"]
        assert event["time"].endswith("Z")
