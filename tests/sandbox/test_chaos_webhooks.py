"""Chaos ``"webhooks": false``: events raised meanwhile are never delivered, yet recorded."""

from __future__ import annotations

import anyio
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.chaos import ChaosSettings
from tests.sandbox.support.helpers import _ticket, running
from tests.servers import serve

pytestmark = pytest.mark.anyio


def test_the_webhooks_setting_is_a_boolean_defaulting_to_true():
    settings = ChaosSettings()
    assert settings.to_json()["webhooks"] is True
    assert settings.merged({"webhooks": False}).webhooks is False
    with pytest.raises(ValueError, match="webhooks must be true or false"):
        settings.merged({"webhooks": "no"})


async def test_events_raised_while_webhooks_are_off_are_dropped_for_good(tmp_path):
    send, receive = anyio.create_memory_object_stream[bytes](100)

    async def hook(request: Request) -> Response:
        send.send_nowait(await request.body())
        return Response(status_code=200)

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with (
        send,
        receive,
        serve(receiver) as hook_url,
        running(tmp_path, webhook_url=f"{hook_url}/hook", webhook_secret="s") as (api, root),
    ):
        off = await root.post("/_sandbox/chaos", json={"webhooks": False})
        assert off.status_code == 200
        assert off.json()["webhooks"] is False
        assert (await root.get("/_sandbox/chaos")).json()["webhooks"] is False
        silent = (await api.post("/tickets", json=_ticket(subject="unheard"))).json()["ticket"]

        assert (await root.put("/_sandbox/chaos", json={"webhooks": True})).json()["webhooks"]
        heard = (await api.post("/tickets", json=_ticket(subject="heard"))).json()["ticket"]
        with anyio.fail_after(10):
            event = orjson.loads(await receive.receive())
        assert event["detail"]["id"] == str(heard["id"])
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(anyio.WouldBlock):
            receive.receive_nowait()

        webhooks = (await root.get("/_sandbox/stats")).json()["webhooks"]
        assert webhooks["suppressed"] == 1
        assert webhooks["queued"] == 1
        # the ticket itself is there, as in any feed over the store
        assert (await api.get(f"/tickets/{silent['id']}")).status_code == 200

        await root.put("/_sandbox/chaos", json={"webhooks": False})
        await root.post("/_sandbox/reset")
        assert (await root.get("/_sandbox/chaos")).json()["webhooks"] is True
