"""The read model against the four sandbox systems over HTTP: initial load, events,
catch-up, read-through, freshness budgets, a system down, the quota split."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import websockets

from canonical import System
from gateway.governance.readmodel import load_readmodel_policy
from gateway.graphql.app import create_graphql_app
from gateway.readmodel.kinds import Kind
from gateway.webhooks.events import map_event
from tests.readmodel.stack import RMStack, open_rm_stack
from tests.servers import serve
from tests.support.paths import ROOT

pytestmark = pytest.mark.anyio

STRIPE = {"Authorization": "Bearer sk_test_crosswalk"}
POLICY = load_readmodel_policy(ROOT / "policies" / "readmodel.toml")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[RMStack]:
    async with open_rm_stack(tmp_path) as opened:
        yield opened


async def _billing_customer(stack: RMStack) -> tuple[str, dict[str, Any]]:
    """A customer with an open invoice, and that invoice."""
    answer = await stack.sandbox.get(
        f"{stack.urls[System.BILLING]}/v1/invoices",
        params={"status": "open", "limit": 1},
        headers=STRIPE,
    )
    invoice: dict[str, Any] = answer.json()["data"][0]
    return str(invoice["customer"]), invoice


async def _record_stripe_events(stack: RMStack, since: int) -> list[str]:
    """Store the billing sandbox's own events since ``since`` in the inbox, as the webhook
    receiver would (its signature check is tested with the receiver)."""
    answer = await stack.sandbox.get(
        f"{stack.urls[System.BILLING]}/v1/events",
        params={"created[gte]": since, "limit": 100},
        headers=STRIPE,
    )
    ids = []
    for payload in reversed(answer.json()["data"]):
        event = map_event(System.BILLING, payload)
        await stack.runtime.store.record_inbox("billing", event.id, event.envelope())
        ids.append(event.id)
    return ids


def _invoice_status(body: dict[str, Any], invoice_id: str) -> str | None:
    nodes = body["data"]["customer"]["invoices"]["nodes"]
    return next((n["status"] for n in nodes if n["id"] == invoice_id), None)


async def test_the_initial_load_serves_a_full_customer_360_without_a_vendor_call(
    stack: RMStack,
) -> None:
    await stack.catch_up_all()
    for system in System:
        assert stack.model.complete_at(system) is not None, system
        assert stack.model.count(system) > 0, system
    before = {system: await stack.requests(system) for system in System}
    body = await stack.read("erp:1000000")
    assert "errors" not in body, body
    customer = body["data"]["customer"]
    assert customer["golden"]["name"]
    assert customer["orders"]["nodes"]
    assert customer["invoices"]["nodes"]
    for system in System:
        row = stack.freshness(body, system)
        assert (row["stale"], row["source"]) == (False, "CATCH_UP"), row
        assert await stack.requests(system) == before[system], system


async def test_a_miss_reads_through_then_answers_locally(stack: RMStack) -> None:
    before = await stack.requests(System.SUPPORT)
    first = await stack.read("erp:1000001")
    assert stack.freshness(first, System.SUPPORT)["source"] == "LIVE"
    assert await stack.requests(System.SUPPORT) > before
    await stack.model.read_throughs_written(within=5)  # written behind the answer
    after_first = await stack.requests(System.SUPPORT)
    second = await stack.read("erp:1000001")
    assert stack.freshness(second, System.SUPPORT)["source"] == "READ_THROUGH"
    assert await stack.requests(System.SUPPORT) == after_first
    assert second["data"]["customer"]["cases"] == first["data"]["customer"]["cases"]


async def test_an_event_is_read_back_applied_once_and_visible(stack: RMStack) -> None:
    await stack.catch_up_all()
    customer, invoice = await _billing_customer(stack)
    since = int(time.time()) - 1
    paid = await stack.sandbox.post(
        f"{stack.urls[System.BILLING]}/v1/invoices/{invoice['id']}/pay", headers=STRIPE
    )
    assert paid.status_code == 200, paid.text
    assert _invoice_status(await stack.read(f"billing:{customer}"), invoice["id"]) == "open"
    ids = await _record_stripe_events(stack, since)
    assert ids
    # the same event again: the inbox keeps one
    event = await stack.runtime.store.get_inbox("billing", ids[0])
    assert event is not None
    assert not await stack.runtime.store.record_inbox("billing", ids[0], event.payload)
    pending = await stack.runtime.store.unapplied_events()
    assert {e.event_id for e in pending} == set(ids)
    await stack.feeds.apply_events(pending)
    assert await stack.runtime.store.unapplied_events() == []
    body = await stack.read(f"billing:{customer}")
    assert _invoice_status(body, invoice["id"]) == "paid"
    view = stack.model.slice(System.BILLING, Kind.INVOICE, customer, many=True)
    assert view is not None
    assert view.source == "EVENTS"
    # a batch applied again (a crash between the read-back and the marks) changes nothing
    assert await stack.feeds.apply_events(pending) == 0


async def test_a_burst_for_one_customer_costs_one_read_back(stack: RMStack) -> None:
    await stack.catch_up_all()
    customer, invoice = await _billing_customer(stack)
    since = int(time.time()) - 1
    for n in range(20):
        updated = await stack.sandbox.post(
            f"{stack.urls[System.BILLING]}/v1/invoices/{invoice['id']}",
            data={"metadata[n]": str(n)},
            headers=STRIPE,
        )
        assert updated.status_code == 200, updated.text
    ids = await _record_stripe_events(stack, since)
    assert len(ids) >= 20
    before = await stack.requests(System.BILLING)
    await stack.feeds.apply_events(await stack.runtime.store.unapplied_events())
    # one slice read back (GET /v1/invoices?customer=) for twenty events
    assert await stack.requests(System.BILLING) - before == 1
    view = stack.model.slice(System.BILLING, Kind.INVOICE, customer, many=True)
    assert view is not None
    assert view.source == "EVENTS"


async def test_a_catch_up_killed_mid_listing_resumes_without_gap_or_duplicate(
    tmp_path: Path,
) -> None:
    small_pages = dataclasses.replace(POLICY, page_size=3)
    async with open_rm_stack(tmp_path, customers=10, policy=small_pages) as stack:
        listed = await stack.sandbox.get(
            f"{stack.urls[System.BILLING]}/v1/invoices", params={"limit": 100}, headers=STRIPE
        )
        every = {doc["id"] for doc in listed.json()["data"]}
        assert len(every) > 6
        pages = 0
        real_apply = stack.model.apply

        async def apply_then_die(*args: Any, **kwargs: Any) -> Any:
            nonlocal pages
            done = await real_apply(*args, **kwargs)
            feed = kwargs.get("feed")
            if feed is not None and feed[1] == "invoices":
                pages += 1
                if pages == 2:
                    raise KeyboardInterrupt  # killed right after its second page committed
            return done

        stack.model.apply = apply_then_die  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            await stack.feeds.catch_up(System.BILLING)
        model = await stack.reload()  # a new process: memory from the store
        state = model.feeds[(System.BILLING, "invoices")]
        assert state.cursor is not None
        assert state.cursor.startswith("after:")
        held = {i for i, _ in model.records(System.BILLING, Kind.INVOICE)}
        assert len(held) == 6  # two pages of three
        await stack.feeds.catch_up(System.BILLING)
        assert {i for i, _ in model.records(System.BILLING, Kind.INVOICE)} == every
        assert model.feeds[(System.BILLING, "invoices")].cursor == "done"
        rows = await stack.runtime.store.read_rows(system="billing")
        invoice_rows = [r.id for r in rows if r.kind == "invoice"]
        assert sorted(invoice_rows) == sorted(every)  # one row each, none twice


async def test_past_its_budget_a_read_refreshes_from_the_system(tmp_path: Path) -> None:
    policy = dataclasses.replace(POLICY, default_budget=0.2, budgets={})
    async with open_rm_stack(tmp_path, policy=policy) as stack:
        await stack.catch_up_all()
        within = await stack.read("erp:1000002")
        assert stack.freshness(within, System.BILLING)["source"] == "CATCH_UP"
        await anyio.sleep(0.3)
        before = await stack.requests(System.BILLING)
        past = await stack.read("erp:1000002")
        assert stack.freshness(past, System.BILLING)["source"] == "LIVE"
        assert stack.freshness(past, System.BILLING)["stale"] is False
        assert await stack.requests(System.BILLING) > before


async def test_a_system_down_is_served_from_the_read_model_marked_stale(
    stack: RMStack,
) -> None:
    await stack.catch_up_all()
    await stack.chaos(System.BILLING, outage=True)
    body = await stack.read("erp:1000003", maxAge=0)
    assert "errors" not in body, body
    row = stack.freshness(body, System.BILLING)
    assert row["stale"] is True, row
    assert row["source"] == "CATCH_UP", row
    assert row["errorCode"] == "SYSTEM_UNAVAILABLE"
    assert "the read model" in row["reason"]
    assert row["ageSeconds"] is not None
    assert body["data"]["customer"]["invoices"]["nodes"]


async def test_max_age_is_zero_or_more_seconds(stack: RMStack) -> None:
    response = await stack.http.post(
        "/graphql",
        json={"query": '{ customer(id: "erp:1000000", maxAge: 0) { id } }'},
        headers={"Authorization": "Bearer demo-portal-key"},
    )
    assert "errors" not in response.json()
    refused = await stack.http.post(
        "/graphql",
        json={"query": '{ customer(id: "erp:1000000", maxAge: -1) { id } }'},
        headers={"Authorization": "Bearer demo-portal-key"},
    )
    assert refused.json()["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"


async def test_refreshes_stay_within_the_interactive_share_under_load(
    stack: RMStack,
) -> None:
    await stack.catch_up_all()
    # support: 11.67 calls/s, interactive share 0.5 -> 5.8/s with a one-second bucket
    rate = stack.runtime.quota.rate(System.SUPPORT, "interactive")
    before = await stack.requests(System.SUPPORT)
    started = time.monotonic()

    async def reader(n: int) -> None:
        for _ in range(10):
            body = await stack.read(f"erp:{1000000 + n % 10}", maxAge=0)
            assert "errors" not in body, body

    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(reader, n)
    elapsed = time.monotonic() - started
    calls = await stack.requests(System.SUPPORT) - before
    # cases and entitlements: up to two calls per refresh, bucket of one second's share
    assert calls <= 2 * (rate * elapsed + max(rate, 1.0)) + 2, (calls, elapsed)
    assert stack.runtime.quota.refused.get((System.SUPPORT, "interactive"), 0) > 0


async def test_query_systems_shows_the_sync_state(stack: RMStack) -> None:
    await stack.catch_up_all()
    response = await stack.http.post(
        "/graphql",
        json={
            "query": "{ systems { system sync { loaded lagSeconds records feeds { feed cursor "
            "completeAt lastError } } } }"
        },
        headers={"Authorization": "Bearer demo-portal-key"},
    )
    systems = response.json()["data"]["systems"]
    for row in systems:
        assert row["sync"]["loaded"] is True, row
        assert row["sync"]["records"] > 0
        assert all(f["cursor"] and f["completeAt"] for f in row["sync"]["feeds"]), row


async def test_customer_events_stream_the_changes_applied_to_that_customer(
    stack: RMStack,
) -> None:
    await stack.catch_up_all()
    customer, invoice = await _billing_customer(stack)
    app = create_graphql_app(stack.runtime)
    async with serve(app) as base:
        url = base.replace("http", "ws") + "/graphql"
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            await ws.send(
                json.dumps(
                    {
                        "type": "connection_init",
                        "payload": {"Authorization": "Bearer demo-portal-key"},
                    }
                )
            )
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(
                json.dumps(
                    {
                        "id": "1",
                        "type": "subscribe",
                        "payload": {
                            "query": "subscription($id: ID!) { customerEvents(customerId: $id) "
                            "{ type system subject kind changedFields source customerId } }",
                            "variables": {"id": f"billing:{customer}"},
                        },
                    }
                )
            )
            await anyio.sleep(0.2)  # subscribed before the change
            since = int(time.time()) - 1
            paid = await stack.sandbox.post(
                f"{stack.urls[System.BILLING]}/v1/invoices/{invoice['id']}/pay", headers=STRIPE
            )
            assert paid.status_code == 200
            await _record_stripe_events(stack, since)
            await stack.feeds.apply_events(await stack.runtime.store.unapplied_events())
            with anyio.fail_after(5):
                message = json.loads(await ws.recv())
            assert message["type"] == "next", message
            event = message["payload"]["data"]["customerEvents"]
            assert event["type"] == "billing.invoice.updated"
            assert event["subject"] == invoice["id"]
            assert "status" in event["changedFields"]
            assert event["source"] == "EVENTS"


LOOKUPS = """query($order: ID!, $invoice: ID!, $document: ID!, $case: ID!) {
  order(id: $order) { order { id status } customer { id } freshness { system stale } }
  byBilling: invoice(id: $invoice) { invoice { id billingInvoiceId erpDocumentId }
                                     customer { id } }
  byDocument: invoice(id: $document) { invoice { id erpDocumentId } customer { id } }
  case(id: $case) { case { id subject } customer { id } freshness { system stale } }
  products { code erpMaterial billingPrice supportTier }
}"""


async def test_look_ups_by_number_answer_from_the_read_model_with_the_customer(
    stack: RMStack,
) -> None:
    await stack.catch_up_all()
    body = await stack.read("erp:1000000")
    customer = body["data"]["customer"]
    order = customer["orders"]["nodes"][0]["id"]
    [invoice] = [i for i in customer["invoices"]["nodes"] if i["id"].startswith("in_")][:1] or [
        customer["invoices"]["nodes"][0]
    ]
    model = stack.model
    documents = [i for i, _ in model.records(System.ERP, Kind.BILLING_DOCUMENT)]
    case_ids = [i for i, _ in model.records(System.SUPPORT, Kind.CASE)]
    before = {system: await stack.requests(system) for system in System}
    response = await stack.http.post(
        "/graphql",
        json={
            "query": LOOKUPS,
            "variables": {
                "order": order,
                "invoice": invoice["id"],
                "document": documents[0],
                "case": case_ids[0],
            },
        },
        headers={"Authorization": "Bearer demo-portal-key"},
    )
    answer = response.json()
    assert "errors" not in answer, answer
    data = answer["data"]
    assert data["order"]["order"]["id"] == order
    assert data["order"]["customer"]["id"]
    assert data["order"]["freshness"] == {"system": "ERP", "stale": False}
    assert data["byBilling"]["invoice"]["billingInvoiceId"] == invoice["id"]
    assert data["byDocument"]["invoice"]["erpDocumentId"] == documents[0]
    assert data["case"]["case"]["id"] == case_ids[0]
    assert data["products"]
    assert all(p["erpMaterial"] and p["billingPrice"] for p in data["products"])
    for system in System:
        assert await stack.requests(system) == before[system], system
    missing = await stack.http.post(
        "/graphql",
        json={"query": '{ order(id: "99999999") { order { id } } }'},
        headers={"Authorization": "Bearer demo-portal-key"},
    )
    assert missing.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
