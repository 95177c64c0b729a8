"""Each sandbox system pushes a real event to the served gateway, which records it once.

The sandbox is started first with the gateway's (chosen, still closed) URL: its sender
retries with backoff, so the order does not matter, but starting the gateway second lets
its systems policy point at the sandbox."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from canonical import System
from sandbox import billing, crm, erp, support
from sandbox.app import SandboxConfig
from sandbox.webhooks import WebhookStats
from tests.servers import free_port, serve
from tests.support.gateway import Gateway, InboxRow, running_gateway

pytestmark = pytest.mark.anyio

APPS: dict[System, Callable[[SandboxConfig], Starlette]] = {
    System.BILLING: billing.create_app,
    System.SUPPORT: support.create_app,
    System.CRM: crm.create_app,
    System.ERP: erp.create_app,
}


@dataclass
class Pair:
    gateway: Gateway
    sandbox: httpx.AsyncClient
    stats: WebhookStats

    async def wait_for(self, system: System, count: int) -> list[InboxRow]:
        """The gateway's inbox once it holds ``count`` events and every one the sandbox
        raised was delivered (acknowledged with a 2xx)."""
        with anyio.fail_after(10):
            while True:
                rows = await self.gateway.inbox(system.value)
                if len(rows) >= count and self.stats.delivered >= self.stats.queued:
                    return rows
                # the events arrive from another server's task: poll the store
                await anyio.sleep(0.02)


@asynccontextmanager
async def pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, system: System, **client: Any
) -> AsyncIterator[Pair]:
    gateway_port = free_port()
    config = SandboxConfig.for_system(
        system.value,
        port=free_port(),
        data_dir=tmp_path / "sandbox",
        customers=5,
        fresh=True,
        gateway_url=f"http://127.0.0.1:{gateway_port}",
    )
    app = APPS[system](config)
    async with (
        serve(app, config.port) as sandbox_url,
        running_gateway(
            tmp_path, monkeypatch, port=gateway_port, urls={system: sandbox_url}
        ) as gateway,
        httpx.AsyncClient(base_url=sandbox_url, timeout=10, **client) as sandbox,
    ):
        yield Pair(gateway, sandbox, app.state.sandbox.webhooks.stats)


def _assert_delivered_once(p: Pair, rows: list[InboxRow], expected: int) -> None:
    assert len(rows) == expected
    assert len({row.event_id for row in rows}) == expected
    assert p.stats.delivered == p.stats.queued == expected
    assert p.stats.failed == p.stats.dropped == 0


async def test_billing_customer_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    auth = {"Authorization": "Bearer sk_test_crosswalk"}
    async with pair(tmp_path, monkeypatch, System.BILLING, headers=auth) as p:
        created = await p.sandbox.post(
            "/v1/customers", data={"name": "Webhook Co", "metadata[erp_bp]": "1000999"}
        )
        assert created.status_code == 200, created.text
        customer = created.json()["id"]
        (row,) = await p.wait_for(System.BILLING, 1)
        events = (await p.sandbox.get("/v1/events", params={"limit": 1})).json()["data"]
        _assert_delivered_once(p, [row], 1)
    assert row.event_id == events[0]["id"]
    assert row.event_id.startswith("evt_")
    assert row.payload["type"] == "billing.customer.created"
    assert row.payload["subject"] == customer
    assert not row.processed


async def test_support_ticket_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    basic = base64.b64encode(b"agent@example.com/token:sandbox").decode()
    async with pair(
        tmp_path, monkeypatch, System.SUPPORT, headers={"Authorization": f"Basic {basic}"}
    ) as p:
        created = await p.sandbox.post(
            "/api/v2/tickets",
            json={"ticket": {"subject": "Webhook test", "comment": {"body": "Hello"}}},
        )
        assert created.status_code == 201, created.text
        ticket = created.json()["ticket"]["id"]
        (row,) = await p.wait_for(System.SUPPORT, 1)
        _assert_delivered_once(p, [row], 1)
    assert row.payload["type"] == "support.ticket.created"
    assert row.payload["subject"] == str(ticket)
    assert row.payload["data"]["subject"] == f"zen:ticket:{ticket}"


async def test_crm_opportunity_updated_and_our_echo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = "/services/data/v60.0"
    auth = {"Authorization": "Bearer 00DSANDBOX!crosswalk"}
    async with pair(tmp_path, monkeypatch, System.CRM, headers=auth) as p:
        query = await p.sandbox.get(
            f"{base}/query", params={"q": "SELECT Id FROM Opportunity LIMIT 1"}
        )
        opportunity = query.json()["records"][0]["Id"]
        url = f"{base}/sobjects/Opportunity/{opportunity}"
        by_user = await p.sandbox.patch(url, json={"StageName": "Negotiation/Review"})
        assert by_user.status_code == 204, by_user.text
        (first,) = await p.wait_for(System.CRM, 1)
        ours = await p.sandbox.patch(
            url,
            json={"ERP_Order_Number__c": "0000004711"},
            headers={"Sforce-Call-Options": "client=crosswalk"},
        )
        assert ours.status_code == 204, ours.text
        rows = await p.wait_for(System.CRM, 2)
        _assert_delivered_once(p, rows, 2)
    assert rows[0] == first
    assert [(r.payload["type"], r.payload["subject"]) for r in rows] == [
        ("crm.opportunity.updated", opportunity),
        ("crm.opportunity.updated", opportunity),
    ]
    assert [r.processed for r in rows] == [False, True]  # the echo needs no handling


async def test_erp_business_partner_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bp = "/sap/opu/odata/sap/API_BUSINESS_PARTNER"
    async with pair(tmp_path, monkeypatch, System.ERP, auth=("sandbox", "sandbox")) as p:
        fetched = await p.sandbox.get(f"{bp}/", headers={"X-CSRF-Token": "Fetch"})
        token = fetched.headers["x-csrf-token"]
        url = f"{bp}/A_BusinessPartner('1000001')"
        etag = (await p.sandbox.get(url)).headers["ETag"]
        changed = await p.sandbox.post(
            url,
            json={"SearchTerm1": "WEBHOOK"},
            headers={"X-CSRF-Token": token, "X-HTTP-Method": "MERGE", "If-Match": etag},
        )
        assert changed.status_code == 204, changed.text
        (row,) = await p.wait_for(System.ERP, 1)
        _assert_delivered_once(p, [row], 1)
    assert row.payload["type"] == "erp.businesspartner.changed"
    assert row.payload["subject"] == "1000001"
    assert row.payload["source"] == "/erp/default/sap.s4.beh/S4HCLNT100"
