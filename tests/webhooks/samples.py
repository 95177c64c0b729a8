"""Vendor payloads as the sandbox systems send them, and signing helpers computed by hand
(independently of gateway.webhooks.verify)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from sandbox.app import DEFAULT_WEBHOOK_SECRETS
from sandbox.crm.events import change_event, change_origin
from sandbox.support.events import ticket_events

SECRETS = DEFAULT_WEBHOOK_SECRETS


def stripe_header(body: bytes, secret: str, *, t: int | None = None, extra_v1: int = 0) -> str:
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    decoys = [f"v1={'0' * 64}" for _ in range(extra_v1)]
    return ",".join([f"t={t}", *decoys, f"v1={mac}"])


def zendesk_headers(body: bytes, secret: str, *, at: float | None = None) -> dict[str, str]:
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    mac = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return {
        "X-Zendesk-Webhook-Signature": base64.b64encode(mac).decode(),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
    }


def signed(system: str, body: bytes, secret: str | None = None) -> dict[str, str]:
    """The headers ``system``'s sandbox would send with ``body``."""
    secret = SECRETS[system] if secret is None else secret
    headers = {"Content-Type": "application/json"}
    if system == "billing":
        headers["Stripe-Signature"] = stripe_header(body, secret)
    elif system == "support":
        headers.update(zendesk_headers(body, secret))
    else:
        headers["Authorization"] = f"Bearer {secret}"
    return headers


def stripe_invoice_finalized(event_id: str = "evt_1PqInvoiceFinal01") -> dict[str, Any]:
    """The shape of sandbox/billing/_http.py ``Ctx.emit``."""
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1764370000,
        "data": {
            "object": {
                "id": "in_1PqInvoice0001",
                "object": "invoice",
                "customer": "cus_QAbc123",
                "status": "open",
                "amount_due": 11900,
                "currency": "eur",
            },
            "previous_attributes": {"status": "draft"},
        },
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": "req_abc", "idempotency_key": None},
        "type": "invoice.finalized",
    }


def stripe_subscription_created() -> dict[str, Any]:
    event = stripe_invoice_finalized("evt_1PqSubCreated01")
    event["type"] = "customer.subscription.created"
    event["data"] = {"object": {"id": "sub_1PqSub", "object": "subscription", "status": "active"}}
    return event


def zendesk_ticket_created(ticket_id: int = 35436) -> dict[str, Any]:
    """Made by the support sandbox's own ``ticket_events``."""
    ticket = {
        "id": ticket_id,
        "assignee_id": None,
        "created_at": "2026-11-28T23:00:00Z",
        "updated_at": "2026-11-28T23:00:00Z",
        "description": "It is off.",
        "external_id": None,
        "organization_id": 361,
        "priority": "low",
        "requester_id": 41,
        "status": "new",
        "subject": "Printer offline",
        "tags": [],
        "type": "problem",
    }
    (body,) = ticket_events(None, ticket)
    event: dict[str, Any] = orjson.loads(body)
    return event


def salesforce_opportunity_updated(*, client: str | None = "portal") -> dict[str, Any]:
    """Made by the CRM sandbox's own ``change_event``."""
    return change_event(
        entity="Opportunity",
        record_id="006SB00000000042AAA",
        change_type="UPDATE",
        fields={"StageName": "Closed Won", "IsClosed": True, "IsWon": True},
        origin=change_origin(client),
        transaction_key="0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        sequence=1,
        replay_id=42,
        committed=datetime(2026, 11, 28, 23, 0, tzinfo=UTC),
    )


def sap_billing_document_created() -> dict[str, Any]:
    """The shape of sandbox/erp/events.py ``_publish``."""
    return {
        "specversion": "1.0",
        "type": "sap.s4.beh.billingdocument.v1.BillingDocument.Created.v1",
        "source": "/default/sap.s4.beh/S4HCLNT100",
        "id": "4f0b1a52-7c1e-4d8e-9a55-0c8d3f1e2b7a",
        "time": "2026-11-28T23:00:00.000Z",
        "datacontenttype": "application/json",
        "data": {"BillingDocument": "90000042"},
    }


def dumps(payload: Any) -> bytes:
    return orjson.dumps(payload)
