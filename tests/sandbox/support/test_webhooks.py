"""The support sandbox's signed webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

import anyio
import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.sandbox.support.helpers import IN_SUPPORT, _ticket, running
from tests.servers import serve

pytestmark = pytest.mark.anyio


def _verify(secret: str, headers: httpx.Headers | dict, body: bytes) -> bool:
    """Zendesk's documented scheme, written from the docs: base64(HMAC-SHA256(ts + body))."""
    stamp = headers["x-zendesk-webhook-signature-timestamp"]
    mac = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return hmac.compare_digest(
        base64.b64encode(mac).decode(), headers["x-zendesk-webhook-signature"]
    )


async def test_webhooks_are_signed_and_only_follow_api_changes(tmp_path):
    send, receive = anyio.create_memory_object_stream[tuple[dict[str, str], bytes]](100)

    async def hook(request: Request) -> Response:
        send.send_nowait((dict(request.headers), await request.body()))
        return Response(status_code=200)

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    secret = "test-secret-for-support"

    async def next_event() -> tuple[dict, dict[str, str], bytes]:
        with anyio.fail_after(10):
            headers, body = await receive.receive()
        return orjson.loads(body), headers, body

    async with (
        send,
        receive,
        serve(receiver) as hook_url,
        running(tmp_path, webhook_url=f"{hook_url}/hook", webhook_secret=secret) as (api, _),
    ):
        org = IN_SUPPORT[0]
        created = await api.post(
            "/tickets", json=_ticket(organization_id=org.support_id, priority="low")
        )
        ticket_id = created.json()["ticket"]["id"]
        event, headers, raw = await next_event()  # the first event is ours: seeding sent none
        assert _verify(secret, headers, raw)
        assert not _verify("other-secret", headers, raw)
        assert not _verify(secret, headers, raw + b" ")
        stamp = datetime.strptime(
            headers["x-zendesk-webhook-signature-timestamp"], "%Y-%m-%dT%H:%M:%SZ"
        )
        assert abs(stamp.replace(tzinfo=UTC).timestamp() - time.time()) < 60
        assert event["type"] == "zen:event-type:ticket.created"
        assert event["subject"] == f"zen:ticket:{ticket_id}"
        assert {"account_id", "id", "time", "zendesk_event_version", "detail", "event"} <= set(
            event
        )
        assert event["detail"]["id"] == str(ticket_id)
        assert event["detail"]["organization_id"] == str(org.support_id)
        assert event["detail"]["status"] == "NEW"

        await api.put(
            f"/tickets/{ticket_id}", json={"ticket": {"status": "open", "priority": "high"}}
        )
        changes = {}
        for _ in range(2):
            event, headers, raw = await next_event()
            assert _verify(secret, headers, raw)
            changes[event["type"]] = event["event"]
        status = changes["zen:event-type:ticket.status_changed"]
        assert (status["previous"], status["current"]) == ("NEW", "OPEN")
        priority = changes["zen:event-type:ticket.priority_changed"]
        assert (priority["previous"], priority["current"]) == ("LOW", "HIGH")

        await api.put(
            f"/organizations/{org.support_id}",
            json={"organization": {"organization_fields": {"entitlement_status": "expired"}}},
        )
        event, headers, raw = await next_event()
        assert _verify(secret, headers, raw)
        assert event["type"] == "zen:event-type:organization.custom_field_changed"
        assert event["subject"] == f"zen:organization:{org.support_id}"
        assert event["event"]["custom_field"]["title"] == "entitlement_status"
        assert event["event"]["current"] == "expired"

        made = await api.post("/organizations", json={"organization": {"name": "Hooked Org"}})
        event, _, _ = await next_event()
        assert event["type"] == "zen:event-type:organization.created"
        assert event["detail"]["id"] == str(made.json()["organization"]["id"])
