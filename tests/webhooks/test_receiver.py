"""POST /webhooks/{system} on the real gateway app, served on loopback, real SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from gateway.governance.webhooks import load_webhooks_policy
from gateway.store import Store, open_store
from gateway.webhooks import MAX_BODY, webhook_endpoint
from tests.support.gateway import Gateway
from tests.support.paths import POLICIES
from tests.webhooks.samples import (
    dumps,
    salesforce_opportunity_updated,
    sap_billing_document_created,
    signed,
    stripe_header,
    stripe_invoice_finalized,
    zendesk_ticket_created,
)

pytestmark = pytest.mark.anyio

SAMPLES = {
    "billing": stripe_invoice_finalized,
    "support": zendesk_ticket_created,
    "crm": salesforce_opportunity_updated,
    "erp": sap_billing_document_created,
}


async def _post(
    served_gateway: Gateway, system: str, body: bytes, **headers: str
) -> httpx.Response:
    return await served_gateway.http.post(
        f"/webhooks/{system}", content=body, headers={**signed(system, body), **headers}
    )


@pytest.mark.parametrize("system", ["billing", "support", "crm", "erp"])
async def test_a_signed_event_is_recorded_once_with_an_audit_entry(
    served_gateway: Gateway, system: str
) -> None:
    payload = SAMPLES[system]()
    body = dumps(payload)
    first = await _post(served_gateway, system, body, **{"X-Correlation-ID": f"corr-{system}-1"})
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["received"] is True
    assert answer["duplicate"] is False
    event_id, event_type = answer["event"]["id"], answer["event"]["type"]
    assert event_type.startswith(f"{system}.")

    stored = await served_gateway.store.get_inbox(system, event_id)
    assert stored is not None
    assert stored.processed_at is None  # waiting for a propagation process
    assert stored.payload["specversion"] == "1.0"
    assert stored.payload["type"] == event_type
    assert stored.payload["data"] == payload
    audit = await served_gateway.store.audit_trace([f"corr-{system}-1"])
    assert [(a.action, a.subject) for a in audit] == [
        ("webhook.received", f"event:{system}:{event_id}")
    ]
    assert audit[0].actor == f"webhook:{system}"

    # the vendor retries (a lost answer): acknowledged, nothing new stored
    again = await _post(served_gateway, system, body, **{"X-Correlation-ID": f"corr-{system}-2"})
    assert again.status_code == 200
    assert again.json() == {
        "received": True,
        "duplicate": True,
        "event": {"id": event_id, "type": event_type},
    }
    assert len(await served_gateway.inbox(system)) == 1
    assert await served_gateway.store.audit_trace([f"corr-{system}-2"]) == []


async def test_concurrent_redeliveries_store_one_event(served_gateway: Gateway) -> None:
    body = dumps(stripe_invoice_finalized("evt_concurrent"))
    answers: list[bool] = []

    async def deliver() -> None:
        response = await _post(served_gateway, "billing", body)
        assert response.status_code == 200
        answers.append(response.json()["duplicate"])

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(deliver)
    assert sorted(answers) == [False] + [True] * 7
    assert [row.event_id for row in await served_gateway.inbox("billing")] == ["evt_concurrent"]


async def test_an_echo_of_our_own_write_is_stored_processed(served_gateway: Gateway) -> None:
    body = dumps(salesforce_opportunity_updated(client="crosswalk"))
    response = await _post(served_gateway, "crm", body, **{"X-Correlation-ID": "corr-echo"})
    assert response.status_code == 200
    assert response.json()["duplicate"] is False
    (row,) = await served_gateway.inbox("crm")
    assert row.processed
    (entry,) = await served_gateway.store.audit_trace(["corr-echo"])
    assert entry.action == "webhook.echo_ignored"
    assert entry.detail["echo"] is True


async def test_a_generated_correlation_id_is_echoed_and_audited(served_gateway: Gateway) -> None:
    response = await _post(served_gateway, "erp", dumps(sap_billing_document_created()))
    correlation = response.headers["X-Correlation-ID"]
    (entry,) = await served_gateway.store.audit_trace([correlation])
    assert entry.action == "webhook.received"


async def test_unknown_system(served_gateway: Gateway) -> None:
    response = await served_gateway.http.post("/webhooks/netsuite", content=b"{}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "UNKNOWN_SYSTEM"
    assert (await served_gateway.http.get("/webhooks/billing")).status_code == 405


BAD_SIGNATURES = [
    ("billing", {}, "SignatureMissing"),
    ("billing", {"Stripe-Signature": "nonsense"}, "SignatureMalformed"),
    ("billing", {"Stripe-Signature": "t=1,v1=00"}, "SignatureInvalid"),
    ("support", {"X-Zendesk-Webhook-Signature": "AAAA"}, "SignatureMissing"),
    ("crm", {"Authorization": "Bearer erp_sandbox_webhook_secret"}, "SignatureInvalid"),
    ("erp", {"Authorization": "Basic c2FuZGJveDpzYW5kYm94"}, "SignatureMalformed"),
]


async def test_bad_or_missing_signature_is_401_and_stores_nothing(served_gateway: Gateway) -> None:
    for system, headers, code in BAD_SIGNATURES:
        body = dumps(SAMPLES[system]())
        response = await served_gateway.http.post(
            f"/webhooks/{system}", content=body, headers=headers
        )
        assert response.status_code == 401, (system, headers)
        assert response.json()["error"]["code"] == code
        assert await served_gateway.inbox(system) == []


async def test_tampered_and_expired_deliveries_are_401(served_gateway: Gateway) -> None:
    body = dumps(stripe_invoice_finalized())
    headers = signed("billing", body)
    tampered = await served_gateway.http.post(
        "/webhooks/billing", content=body + b" ", headers=headers
    )
    assert tampered.json()["error"]["code"] == "SignatureInvalid"
    old = {"Stripe-Signature": stripe_header(body, "whsec_crosswalk_sandbox", t=1_000_000)}
    expired = await served_gateway.http.post("/webhooks/billing", content=body, headers=old)
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "SignatureExpired"
    assert await served_gateway.inbox("billing") == []


async def test_signed_garbage_is_400(served_gateway: Gateway) -> None:
    for body, code in [
        (b"not json", "NOT_JSON"),
        (b"", "NOT_JSON"),
        (b'{"type": "zen:event-type:ticket.created"}', "EVENT_INVALID"),
        (b"[]", "EVENT_INVALID"),
        (b"\xff\xfe", "NOT_JSON"),
    ]:
        response = await _post(served_gateway, "support", body)
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == code
    assert await served_gateway.inbox("support") == []


async def test_a_body_over_one_mib_is_413(served_gateway: Gateway) -> None:
    big = b" " * (MAX_BODY + 1)
    declared = await served_gateway.http.post(
        "/webhooks/erp", content=big, headers=signed("erp", big)
    )
    assert declared.status_code == 413

    async def chunks() -> Any:  # no Content-Length: the limit holds while reading
        for _ in range(17):
            yield b" " * 65536

    streamed = await served_gateway.http.post(
        "/webhooks/erp", content=chunks(), headers=signed("erp", b"")
    )
    assert streamed.status_code == 413
    assert await served_gateway.inbox("erp") == []


async def test_hostile_input_never_gets_a_500(served_gateway: Gateway) -> None:
    far = dumps({**stripe_invoice_finalized(), "created": 10**15})
    crm = salesforce_opportunity_updated()
    crm["data"]["payload"]["ChangeEventHeader"]["commitTimestamp"] = 10**18
    crm_ids = salesforce_opportunity_updated()
    crm_ids["data"]["payload"]["ChangeEventHeader"]["recordIds"] = [{}]
    cases: list[tuple[str, bytes, dict[str, Any]]] = [
        ("billing", b"{}", {"Stripe-Signature": "t=" + "9" * 5000 + ",v1=00"}),
        ("billing", far, signed("billing", far)),
        ("crm", dumps(crm), signed("crm", b"")),
        ("crm", dumps(crm_ids), signed("crm", b"")),
        ("erp", b"[" * 5000, signed("erp", b"")),
        ("erp", b'{"id": 1e400, "n": 123456789012345678901234567890}', signed("erp", b"")),
        ("erp", b"{}", {"Authorization": b"Bearer \xff\xfe"}),
        (
            "support",
            b"{}",
            {
                "X-Zendesk-Webhook-Signature": "AAAA",
                "X-Zendesk-Webhook-Signature-Timestamp": "2026-13-45T99:00:00Z",
            },
        ),
    ]
    for system, body, headers in cases:
        response = await served_gateway.http.post(
            f"/webhooks/{system}", content=body, headers=headers
        )
        assert response.status_code in (400, 401), (system, body[:60], response.text)
        assert response.json()["error"]["message"]
    for system in SAMPLES:
        assert await served_gateway.inbox(system) == []


async def test_a_store_that_cannot_record_asks_the_vendor_to_retry(tmp_path: Path) -> None:
    policy = load_webhooks_policy(POLICIES / "webhooks.toml")
    async with open_store(f"sqlite:///{tmp_path / 'closed.db'}") as store:
        pass  # closed on leaving: every transaction now fails with StoreClosed

    def not_started() -> Store:
        raise RuntimeError("The gateway runtime is not open (lifespan not started).")

    body = dumps(sap_billing_document_created())
    for getter, code in [(lambda: store, "STORE_UNAVAILABLE"), (not_started, "STARTING")]:
        app = Starlette(
            routes=[Route("/webhooks/{system}", webhook_endpoint(policy, getter), methods=["POST"])]
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://served_gateway") as http:
            response = await http.post("/webhooks/erp", content=body, headers=signed("erp", body))
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.json()["error"]["code"] == code
