"""Per-client budgets (requests and query cost per minute) and the request body deadline."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from gateway.governance.clients import ClientsPolicy, QueryLimits, hash_api_key, load_clients_policy
from gateway.graphql.app import create_graphql_app
from gateway.graphql.ratelimit import RateLimiter
from tests.graphql.conftest import Runtime, read_schema
from tests.graphql.transports import over_http, over_ws
from tests.servers import serve
from tests.support.paths import ROOT

pytestmark = pytest.mark.anyio

QUERY = {"query": "{ systems { system } }"}


def _policy(**limits: Any) -> ClientsPolicy:
    shipped = load_clients_policy(ROOT / "policies" / "clients.toml")
    portal = shipped.clients["demo-portal"]
    tight = dataclasses.replace(portal, id="tight", requests_per_minute=3, cost_per_minute=10)
    return dataclasses.replace(
        shipped,
        clients={**shipped.clients, "tight": tight},
        api_keys={**shipped.api_keys, hash_api_key("tight-key"): "tight"},
        limits=dataclasses.replace(QueryLimits(), **limits),
    )


@pytest.fixture
async def base(runtime: Runtime) -> AsyncIterator[str]:
    app = create_graphql_app(runtime, schema=read_schema(), clients=_policy(max_cost=10))
    async with serve(app) as url:
        yield url


async def test_request_rate_is_per_client_over_both_transports(base: str) -> None:
    # three requests a minute: HTTP, WS, HTTP pass; the fourth is throttled on either
    assert (await over_http(base, "tight-key", QUERY)).data == {"systems": []}
    assert (await over_ws(base, "tight-key", QUERY)).data == {"systems": []}
    assert (await over_http(base, "tight-key", QUERY)).data == {"systems": []}
    http = await over_http(base, "tight-key", QUERY)
    assert http.status == 429
    assert http.codes == ["THROTTLED"]
    assert http.errors[0]["extensions"]["client"] == "tight"
    assert http.errors[0]["extensions"]["budget"] == "requests"
    retry_after = int(http.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert http.errors[0]["extensions"]["retryAfter"] == retry_after
    ws = await over_ws(base, "tight-key", QUERY)
    assert ws.status == "error"
    assert ws.codes == ["THROTTLED"]
    assert ws.errors[0]["extensions"]["client"] == "tight"
    # another client's budget is its own
    assert (await over_http(base, "demo-portal-key", QUERY)).data == {"systems": []}


async def test_cost_budget_counts_the_estimated_cost(base: str) -> None:
    # each alias of systems costs 1: 6 + 6 is over the budget of 10 a minute
    costly = {"query": "{ " + " ".join(f"a{i}: systems {{ system }}" for i in range(6)) + " }"}
    first = await over_http(base, "tight-key", costly)
    assert first.status == 200
    assert first.errors == []
    second = await over_ws(base, "tight-key", costly)
    assert second.codes == ["THROTTLED"]
    assert second.errors[0]["extensions"]["budget"] == "cost"
    third = await over_http(base, "tight-key", costly)
    assert third.status == 429
    assert third.errors[0]["extensions"]["budget"] == "cost"
    assert "retry-after" in third.headers


def test_buckets_refill_with_time() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    client = _policy().clients["tight"]
    for _ in range(3):
        limiter.request(client)
    with pytest.raises(Exception, match="over its budget of 3 requests"):
        limiter.request(client)
    now[0] += 20.0  # a third of a minute: one request's worth
    limiter.request(client)


async def test_demo_clients_have_generous_budgets() -> None:
    shipped = load_clients_policy(ROOT / "policies" / "clients.toml")
    for client in shipped.clients.values():
        assert client.requests_per_minute >= 100_000
        assert client.cost_per_minute >= 10_000_000


# ---------------------------------------------------------------- slow request bodies


async def _raw_post(url: str, body: bytes, *, pace: float | None) -> bytes:
    """POST ``body`` over a plain socket, one byte at a time every ``pace`` seconds (or
    at once), and return the raw response up to its end."""
    host, port = url.removeprefix("http://").split(":")
    head = (
        "POST /graphql HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Authorization: Bearer demo-portal-key\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    response = b""
    with anyio.fail_after(20):
        async with await anyio.connect_tcp(host, int(port)) as stream:
            await stream.send(head)

            async def trickle() -> None:
                if pace is None:
                    await stream.send(body)
                    return
                for i in range(len(body)):
                    await stream.send(body[i : i + 1])
                    await anyio.sleep(pace)  # the slow client itself, not a synchronisation

            async with anyio.create_task_group() as tg:
                tg.start_soon(trickle)
                try:
                    while True:
                        response += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
                    pass
                tg.cancel_scope.cancel()
    return response


async def test_a_slow_body_is_cut_off_with_408(runtime: Runtime) -> None:
    app = create_graphql_app(runtime, schema=read_schema(), clients=_policy(body_seconds=1))
    async with serve(app) as url:
        body = httpx.Request("POST", url, json=QUERY).content
        response = await _raw_post(url, body, pace=0.2)
        assert response.startswith(b"HTTP/1.1 408 "), response[:200]
        assert b'"code":"VALIDATION_FAILED"' in response
        assert b'"limit":"body_seconds"' in response
        # a body sent at once is answered as usual
        quick = await _raw_post(url, body, pace=None)
        assert quick.startswith(b"HTTP/1.1 200 "), quick[:200]
        assert b'{"data":{"systems":[]}}' in quick
