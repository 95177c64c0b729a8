"""The graphql-transport-ws transport on /graphql: authenticated in connection_init."""

from __future__ import annotations

import json

import pytest
import websockets

from gateway.graphql.app import create_graphql_app
from tests.graphql.conftest import Runtime, read_schema
from tests.servers import serve

pytestmark = pytest.mark.anyio

PROTOCOL = "graphql-transport-ws"


async def test_connection_init_with_a_key_is_acknowledged(runtime: Runtime) -> None:
    app = create_graphql_app(runtime, schema=read_schema())
    async with serve(app) as base:
        url = base.replace("http", "ws") + "/graphql"
        async with websockets.connect(url, subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
            await ws.send(
                json.dumps(
                    {
                        "type": "connection_init",
                        "payload": {"Authorization": "Bearer demo-portal-key"},
                    }
                )
            )
            assert json.loads(await ws.recv()) == {"type": "connection_ack"}
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await ws.recv())["type"] == "pong"


async def test_connection_init_with_a_bad_key_is_refused(runtime: Runtime) -> None:
    app = create_graphql_app(runtime, schema=read_schema())
    async with serve(app) as base:
        url = base.replace("http", "ws") + "/graphql"
        async with websockets.connect(url, subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
            await ws.send(
                json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer no"}})
            )
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4403
