"""Send one GraphQL operation over either transport and get its errors or data back.

    app = create_graphql_app(runtime, schema=read_schema(), clients=policy)
    async with serve(app) as base:
        answer = await over_ws(base, "demo-portal-key", {"query": "{ systems { system } }"})
        answer = await over_http(base, "demo-portal-key", {"query": ...})

Both return ``Answer(errors, data, status)``: for the websocket, ``status`` is the
protocol message that ended the operation (``error`` or ``complete``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import websockets

PROTOCOL = "graphql-transport-ws"
#: hang guard: a test never waits longer than this for one answer
DEADLINE = 20.0


@dataclass
class Answer:
    status: int | str
    errors: list[dict[str, Any]] = field(default_factory=list)
    data: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    #: every ``next`` payload (subscriptions)
    payloads: list[dict[str, Any]] = field(default_factory=list)

    @property
    def codes(self) -> list[str]:
        return [e.get("extensions", {}).get("code") for e in self.errors]

    @property
    def limit(self) -> Any:
        return self.errors[0].get("extensions", {}).get("limit") if self.errors else None


async def over_http(base: str, key: str, payload: dict[str, Any]) -> Answer:
    async with httpx.AsyncClient(base_url=base, timeout=DEADLINE) as http:
        response = await http.post(
            "/graphql", json=payload, headers={"Authorization": f"Bearer {key}"}
        )
    body = response.json()
    return Answer(
        status=response.status_code,
        errors=body.get("errors", []),
        data=body.get("data"),
        headers=dict(response.headers),
    )


async def over_ws(base: str, key: str, payload: dict[str, Any], *, limit: int = 100) -> Answer:
    """Run one operation on a fresh connection; collect up to ``limit`` ``next`` payloads."""
    url = base.replace("http", "ws", 1) + "/graphql"
    with anyio.fail_after(DEADLINE):
        async with websockets.connect(url, subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
            await ws.send(
                json.dumps(
                    {"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}
                )
            )
            ack = json.loads(await ws.recv())
            assert ack["type"] == "connection_ack", ack
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            answer = Answer(status="")
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "next":
                    answer.payloads.append(message["payload"])
                    answer.data = message["payload"].get("data")
                    answer.errors = message["payload"].get("errors", [])
                    if len(answer.payloads) >= limit:
                        answer.status = "next"
                        return answer
                elif message["type"] == "error":
                    answer.status = "error"
                    answer.errors = message["payload"]
                    return answer
                elif message["type"] == "complete":
                    answer.status = "complete"
                    return answer
