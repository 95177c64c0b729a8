"""The CRM sandbox's change events, pushed to a receiver with the bearer secret."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.sandbox.crm.helpers import BASE, DEMO, running
from tests.servers import serve

pytestmark = pytest.mark.anyio


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
