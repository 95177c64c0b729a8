"""The ERP connector's batched reads: several ``or`` chunks cost one ``$batch`` request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from actors.connector import Endpoint
from actors.erp import ErpConnector, or_chunks
from actors.errors import (
    CrosswalkSystemError,
    LimitExceeded,
    MalformedResponse,
    NotFound,
    Rejected,
    SystemUnavailable,
    Throttled,
)
from actors.messages import GetOrders
from sandbox.erp import batch as sandbox_batch
from tests.actors.erp.helpers import CREDENTIALS, Env, environment
from tests.servers import serve

pytestmark = pytest.mark.anyio

SO = "/sap/opu/odata/sap/API_SALES_ORDER_SRV"
SO_SET = f"GET {SO}/A_SalesOrder"
SO_BATCH = f"POST {SO}/$batch"
REAL = tuple(str(1000000 + n) for n in range(20))


def spread() -> tuple[str, ...]:
    """600 unknown customers with the 20 real ones spread among them: several chunks,
    each holding some customers with orders."""
    ids: list[str] = []
    for n in range(600):
        if n % 30 == 0:
            ids.append(REAL[n // 30])
        ids.append(f"X{n:09d}")
    return tuple(ids)


async def stats(env: Env) -> tuple[int, dict[str, int]]:
    body = (await env.http.get("/_sandbox/stats")).json()
    return int(body["requests"]), dict(body["by_route"])


def filters(ids: tuple[str, ...]) -> list[str]:
    chunks = or_chunks("SoldToParty", ids)
    assert len(chunks) >= 3
    assert all(any(f"'{real}'" in chunk for real in REAL) for chunk in chunks)
    return chunks


async def test_get_orders_over_several_chunks_costs_one_sandbox_request(tmp_path):
    async with environment(tmp_path) as env:
        ids = spread()
        filters(ids)
        expected = await env.erp.handle(GetOrders(REAL))  # one chunk: one plain GET
        assert len(expected) == 20

        requests, before = await stats(env)
        orders = await env.erp.handle(GetOrders(ids))
        requests_after, after = await stats(env)
        assert requests_after - requests == 1
        assert after.get(SO_BATCH, 0) - before.get(SO_BATCH, 0) == 1
        assert after.get(SO_SET, 0) == before.get(SO_SET, 0)
        assert orders == expected


async def test_next_links_are_followed_per_chunk_after_the_batch(tmp_path):
    async with environment(tmp_path, page_size=3) as env:
        ids = spread()
        expected = await env.erp.handle(GetOrders(REAL))
        _, before = await stats(env)
        assert await env.erp.handle(GetOrders(ids)) == expected
        _, after = await stats(env)
        assert after[SO_BATCH] - before.get(SO_BATCH, 0) == 1
        assert after[SO_SET] - before[SO_SET] > 0  # pages after the first, per chunk


async def test_a_batch_answer_past_max_body_bytes_is_read_one_get_per_chunk(tmp_path):
    async with environment(tmp_path) as env:
        ids = spread()
        chunks = filters(ids)
        sizes = [
            len(
                (
                    await env.http.get(
                        f"{SO}/A_SalesOrder",
                        params={"$filter": c, "$format": "json", "$expand": "to_Item"},
                    )
                ).content
            )
            for c in chunks
        ]
        expected = await env.erp.handle(GetOrders(REAL))
    bound = max(sizes) + 200
    assert sum(sizes) > bound
    async with environment(tmp_path, bounds={"max_body_bytes": bound}) as env:
        _, before = await stats(env)
        assert await env.erp.handle(GetOrders(ids)) == expected
        _, after = await stats(env)
        assert after[SO_BATCH] - before.get(SO_BATCH, 0) == 1  # refused by size
        assert after[SO_SET] - before.get(SO_SET, 0) == len(chunks)

    async with environment(tmp_path, bounds={"max_body_bytes": min(sizes) - 1}) as env:
        with pytest.raises(LimitExceeded, match="max_body_bytes"):
            await env.erp.handle(GetOrders(ids))


async def test_a_batched_first_page_counts_against_max_pages(tmp_path):
    async with environment(tmp_path, bounds={"max_pages": 1}) as env:
        assert await env.erp.handle(GetOrders(spread()))
    async with environment(tmp_path, page_size=2, bounds={"max_pages": 1}) as env:
        with pytest.raises(LimitExceeded, match="max_pages"):
            await env.erp.handle(GetOrders(spread()))


async def test_a_throttled_or_malformed_batch_maps_like_a_single_get(tmp_path):
    async with environment(tmp_path) as env:
        await env.chaos(throttle=True)
        with pytest.raises(Throttled):
            await env.erp.handle(GetOrders(spread()))
        await env.chaos(throttle=False, malformed_rate=1.0)
        with pytest.raises(MalformedResponse):
            await env.erp.handle(GetOrders(spread()))


# ------------------------------------------------------------------------ part errors

PAGE = orjson.dumps({"d": {"results": []}})
JSON = (("content-type", "application/json"),)


def sap_error(message: str, propertyref: str = "") -> bytes:
    detail = {"code": "X/1", "message": message, "propertyref": propertyref, "severity": "error"}
    error = {
        "code": "X/1",
        "message": {"lang": "en", "value": message},
        "innererror": {"errordetails": [detail]},
    }
    return orjson.dumps({"error": error})


Answer = Callable[[int], sandbox_batch.PartAnswer]


@asynccontextmanager
async def fake_erp(answer: Answer, *, raw: Response | None = None) -> AsyncIterator[ErpConnector]:
    """An ERP whose ``$batch`` answers part ``n`` with ``answer(n)`` (or ``raw`` whole)."""

    async def batch(request: Request) -> Response:
        if raw is not None:
            return raw
        parts = sandbox_batch.parse_batch(request.headers["content-type"], await request.body())
        assert all(p.method == "GET" and p.url.startswith("A_SalesOrder?") for p in parts)
        content_type, body = sandbox_batch.render_batch([answer(n) for n in range(len(parts))])
        return Response(body, status_code=202, headers={"Content-Type": content_type})

    app = Starlette(routes=[Route(f"{SO}/$batch", batch, methods=["POST"])])
    async with serve(app) as url, ErpConnector(Endpoint(url, CREDENTIALS, timeout=5.0)) as erp:
        yield erp


def second(status: int, body: bytes, *headers: tuple[str, str]) -> Answer:
    def answer(n: int) -> sandbox_batch.PartAnswer:
        if n == 1:
            return sandbox_batch.PartAnswer(status, JSON + headers, body)
        return sandbox_batch.PartAnswer(200, JSON, PAGE)

    return answer


PART_ERRORS: list[tuple[Answer, type[CrosswalkSystemError], str]] = [
    (second(404, sap_error("no such set")), NotFound, "no such set"),
    (second(503, sap_error("busy"), ("retry-after", "3")), Throttled, "throttled"),
    (second(500, sap_error("dump")), SystemUnavailable, "dump"),
    (second(400, sap_error("bad filter", "SoldToParty")), Rejected, "SoldToParty"),
    (second(401, sap_error("logon")), Rejected, "credentials"),
    (second(200, b'{"d": '), MalformedResponse, "JSON"),
    (second(200, b'{"d": {"results": 1}}'), MalformedResponse, "no results list"),
]


@pytest.mark.parametrize(("answer", "error", "text"), PART_ERRORS)
async def test_each_part_maps_through_the_single_get_errors(answer, error, text):
    async with fake_erp(answer) as erp:
        with pytest.raises(error, match=text) as caught:
            await erp.handle(GetOrders(spread()))
    if error is Throttled:
        assert caught.value.retry_after == 3
    if error is Rejected and "SoldToParty" in text:
        assert "SoldToParty" in caught.value.details


def fine(n: int) -> sandbox_batch.PartAnswer:
    return sandbox_batch.PartAnswer(200, JSON, PAGE)


WHOLE: list[tuple[Response, type[CrosswalkSystemError], str]] = [
    (
        Response(sap_error("busy"), 503, {"Retry-After": "2"}, "application/json"),
        Throttled,
        "throttled",
    ),
    (
        Response(b"--b\r\n", 202, media_type="multipart/mixed; boundary=b"),
        MalformedResponse,
        "--b--",
    ),
    (Response(PAGE, 202, media_type="application/json"), MalformedResponse, "multipart"),
    (
        Response(sandbox_batch.render_batch([fine(0)])[1], 202),
        MalformedResponse,
        "not multipart/mixed",
    ),
]


@pytest.mark.parametrize(("raw", "error", "text"), WHOLE)
async def test_the_batch_answer_itself_maps_like_a_single_answer(raw, error, text):
    async with fake_erp(fine, raw=raw) as erp:
        with pytest.raises(error, match=text):
            await erp.handle(GetOrders(spread()))


async def test_a_batch_answering_fewer_parts_is_malformed():
    content_type, body = sandbox_batch.render_batch([fine(0)])
    raw = Response(body, 202, headers={"Content-Type": content_type})
    async with fake_erp(fine, raw=raw) as erp:
        with pytest.raises(MalformedResponse, match="answered 1 parts"):
            await erp.handle(GetOrders(spread()))


async def test_all_fine_parts_give_no_orders():
    async with fake_erp(fine) as erp:
        assert await erp.handle(GetOrders(spread())) == {}
