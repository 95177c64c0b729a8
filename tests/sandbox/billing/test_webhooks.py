"""The billing sandbox's signed webhooks and the events feed."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path

import anyio
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.sandbox.billing.helpers import _error, _walk, running
from tests.servers import serve

pytestmark = pytest.mark.anyio


SECRET = "whsec_test_billing"


def verify_stripe_signature(
    header: str, body: bytes, secret: str, *, now: float, tolerance: float = 300
) -> None:
    """Stripe's documented scheme, written from the docs: t=<unix>,v1=<hex HMAC-SHA256>."""
    pairs = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for key, value in pairs if key == "t"]
    signatures = [value for key, value in pairs if key == "v1"]
    if len(stamps) != 1 or not signatures:
        raise ValueError("no timestamp or no v1 signature")
    stamp = int(stamps[0])
    if abs(now - stamp) > tolerance:
        raise ValueError("timestamp outside the tolerance")
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise ValueError("no matching v1 signature")


async def test_webhooks_are_signed_stripe_events(tmp_path: Path) -> None:
    received: list[tuple[str, bytes]] = []
    arrived = anyio.Event()

    async def hook(request: Request) -> Response:
        received.append((request.headers["stripe-signature"], await request.body()))
        if len(received) >= 2:
            arrived.set()
        return Response(status_code=200)

    receiver = Starlette(routes=[Route("/webhooks/billing", hook, methods=["POST"])])
    async with serve(receiver) as hook_url:
        url = f"{hook_url}/webhooks/billing"
        async with running(tmp_path, webhook_url=url, webhook_secret=SECRET) as (api, _):
            created = await api.post(
                "/v1/customers", data={"name": "Hooked"}, headers={"Idempotency-Key": "hook-1"}
            )
            customer = created.json()
            await api.post(f"/v1/customers/{customer['id']}", data={"name": "Hooked Again"})
            with anyio.fail_after(10):
                await arrived.wait()
    events = []
    for header, body in received:
        verify_stripe_signature(header, body, SECRET, now=time.time())
        events.append(orjson.loads(body))
    first, second = sorted(events, key=lambda e: e["type"])
    assert first["type"] == "customer.created"
    assert first["object"] == "event"
    assert first["id"].startswith("evt_")
    assert first["livemode"] is False
    assert first["data"]["object"]["id"] == customer["id"]
    assert first["request"] == {"id": created.headers["Request-Id"], "idempotency_key": "hook-1"}
    assert first["pending_webhooks"] == 1
    assert first["api_version"]
    assert second["type"] == "customer.updated"
    assert second["data"]["previous_attributes"] == {"name": "Hooked"}

    header, body = received[0]
    with pytest.raises(ValueError, match="v1"):
        verify_stripe_signature(header, body + b" ", SECRET, now=time.time())
    with pytest.raises(ValueError, match="tolerance"):
        verify_stripe_signature(header, body, SECRET, now=time.time() + 301)
    with pytest.raises(ValueError, match="v1"):
        verify_stripe_signature(header, body, "whsec_other", now=time.time())


async def test_seeding_publishes_no_events(tmp_path: Path) -> None:
    received: list[bytes] = []

    async def hook(request: Request) -> Response:
        received.append(await request.body())
        return Response(status_code=200)

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve(receiver) as hook_url:
        changes = {"webhook_url": f"{hook_url}/hook", "webhook_secret": SECRET}
        async with running(tmp_path, **changes) as (api, bare):
            await bare.post("/_sandbox/reset")
            assert (await api.get("/v1/events")).json()["data"] == []
    assert received == []


async def test_events_feed_filters_pages_and_keeps_each_object_as_it_was(tmp_path: Path) -> None:
    # a receiver nobody listens on: with webhooks off nothing is even tried
    async with running(tmp_path, webhook_url="http://127.0.0.1:9/hook") as (api, bare):
        await bare.post("/_sandbox/chaos", json={"webhooks": False})
        first = (await api.post("/v1/customers", data={"name": "Feed One"})).json()
        await api.post(f"/v1/customers/{first['id']}", data={"name": "Feed One Renamed"})
        for n in range(4):
            await api.post("/v1/customers", data={"name": f"Feed {n + 2}"})
        await api.delete(f"/v1/customers/{first['id']}")
        stats = (await bare.get("/_sandbox/stats")).json()
        assert stats["webhooks"]["suppressed"] == 7

        every = await _walk(api, "/v1/events", limit=3)
        assert [e["type"] for e in every] == [
            "customer.deleted",
            *["customer.created"] * 4,
            "customer.updated",
            "customer.created",
        ]
        assert all(e["pending_webhooks"] == 0 for e in every)
        created_at = [e["created"] for e in every]
        assert created_at == sorted(created_at, reverse=True)
        # each event holds the object as it was when the event was raised
        assert every[-1]["data"]["object"]["name"] == "Feed One"
        assert every[-2]["data"]["object"]["name"] == "Feed One Renamed"
        assert every[-2]["data"]["previous_attributes"] == {"name": "Feed One"}

        page = (await api.get("/v1/events", params={"limit": 2})).json()
        assert page["has_more"] is True
        assert [e["id"] for e in page["data"]] == [e["id"] for e in every[:2]]
        back = await api.get("/v1/events", params={"limit": 2, "ending_before": every[3]["id"]})
        assert [e["id"] for e in back.json()["data"]] == [e["id"] for e in every[1:3]]
        assert back.json()["has_more"] is True
        one = await api.get("/v1/events", params={"limit": 100, "starting_after": every[5]["id"]})
        assert [e["id"] for e in one.json()["data"]] == [every[6]["id"]]
        assert one.json()["has_more"] is False

        t = every[-1]["created"]
        for op, keep in (
            ("gt", lambda c: c > t),
            ("gte", lambda c: c >= t),
            ("lt", lambda c: c < t),
            ("lte", lambda c: c <= t),
        ):
            answer = await api.get("/v1/events", params={f"created[{op}]": t, "limit": 100})
            assert [e["id"] for e in answer.json()["data"]] == [
                e["id"] for e in every if keep(e["created"])
            ], op
        later = await api.get("/v1/events", params={"created[gt]": int(time.time()) + 60})
        assert later.json()["data"] == []

        picked = await api.get(
            "/v1/events",
            params=[("types[]", "customer.updated"), ("types[]", "customer.deleted")],
        )
        assert [e["type"] for e in picked.json()["data"]] == [
            "customer.deleted",
            "customer.updated",
        ]
        single = await api.get("/v1/events", params={"type": "customer.updated"})
        assert [e["id"] for e in single.json()["data"]] == [every[-2]["id"]]
        wildcard = await api.get("/v1/events", params={"type": "customer.*", "limit": 100})
        assert len(wildcard.json()["data"]) == len(every)
        both = await api.get(
            "/v1/events", params={"type": "customer.updated", "types[]": "customer.deleted"}
        )
        assert both.status_code == 400
        assert "type, types" in _error(both)["message"]
        for bad in (0, 101):
            wrong = await api.get("/v1/events", params={"limit": bad})
            assert wrong.status_code == 400
            assert _error(wrong)["param"] == "limit"
