"""Reads are bounded by policy: body bytes, pages, Retry-After seconds, discovery listings."""

from __future__ import annotations

import email.utils
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from actors.billing import BillingConnector
from actors.connector import Endpoint, HttpConnector
from actors.errors import LimitExceeded, retry_after_seconds
from actors.messages import Page
from canonical import Customer, System
from gateway.governance.errors import PolicyError
from gateway.governance.systems import load_systems_policy
from gateway.processes.discovery import discover
from tests.servers import serve

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
BIG = b"x" * 10_000


async def sized(request: Request) -> Response:
    return Response(BIG, media_type="application/octet-stream")


async def chunked(request: Request) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 1_000

    return StreamingResponse(body(), media_type="application/octet-stream")


async def endless_customers(request: Request) -> JSONResponse:
    after = request.query_params.get("starting_after", "cus_0")
    following = f"cus_{int(after.removeprefix('cus_')) + 1}"
    return JSONResponse(
        {"object": "list", "has_more": True, "data": [{"id": following, "object": "customer"}]}
    )


APP = Starlette(
    routes=[
        Route("/sized", sized),
        Route("/chunked", chunked),
        Route("/v1/customers", endless_customers),
    ]
)


class Plain(HttpConnector):
    system = System.ERP


@pytest.mark.parametrize("path", ["/sized", "/chunked"])
async def test_a_body_past_max_body_bytes_is_refused(path: str) -> None:
    async with serve(APP) as url:
        async with Plain(Endpoint(url, max_body_bytes=4_096)) as small:
            with pytest.raises(LimitExceeded, match=r"more than 4096 bytes.*max_body_bytes"):
                await small.request("GET", path)
        async with Plain(Endpoint(url, max_body_bytes=20_000)) as roomy:
            assert len((await roomy.request("GET", path)).body) == 10_000


async def test_a_paging_walk_stops_at_max_pages() -> None:
    async with serve(APP) as url:
        endpoint = Endpoint(url, credentials={"api_key": "sk"}, max_pages=5)
        async with BillingConnector(endpoint) as billing:
            with pytest.raises(LimitExceeded, match="past 5 pages"):
                await billing._walk("/v1/customers", {})


def test_retry_after_is_capped_and_read_in_both_forms() -> None:
    assert retry_after_seconds({}, 60) is None
    assert retry_after_seconds({"Retry-After": "2"}, 60) == 2
    assert retry_after_seconds({"Retry-After": "86400"}, 60) == 60
    assert retry_after_seconds({"Retry-After": "inf"}, 60) == 60
    assert retry_after_seconds({"Retry-After": "nan"}, 60) == 60
    assert retry_after_seconds({"Retry-After": "-5"}, 60) == 0
    assert retry_after_seconds({"Retry-After": "soon"}, 60) is None
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 20 <= (retry_after_seconds({"Retry-After": later}, 60) or 0) <= 30
    far = email.utils.format_datetime(datetime.now(UTC) + timedelta(days=7), usegmt=True)
    assert retry_after_seconds({"Retry-After": far}, 60) == 60


def _systems_toml(tmp_path: Path, bounds: str) -> Path:
    text = (ROOT / "policies" / "systems.toml").read_text()
    text = text.replace(
        "bounds = { max_body_bytes = 8388608, max_pages = 1000, max_retry_after = 60.0 }",
        bounds,
        1,
    )
    path = tmp_path / "systems.toml"
    path.write_text(text)
    return path


def test_bounds_in_policy_are_validated(tmp_path: Path) -> None:
    shipped = load_systems_policy(ROOT / "policies" / "systems.toml", profile="sandbox")
    assert shipped[System.ERP].bounds.max_pages == 1000
    assert shipped[System.ERP].endpoint().max_retry_after == 60.0
    for bounds, key in (
        ("bounds = { max_retry_after = inf }", "max_retry_after"),
        ("bounds = { max_pages = 0 }", "max_pages"),
        ("bounds = { max_bytes = 5 }", "max_bytes"),
    ):
        with pytest.raises(PolicyError) as failure:
            load_systems_policy(_systems_toml(tmp_path, bounds), profile="sandbox")
        assert "systems.toml" in str(failure.value)
        assert key in str(failure.value)


class EndlessListing:
    """An actor whose customer list never ends."""

    def __init__(self) -> None:
        self.asks = 0

    async def ask(self, message: Any, **_: Any) -> Page[Customer]:
        self.asks += 1
        customer = Customer(system=System.CRM, id=f"001{self.asks:015d}", name="Endless")
        return Page((customer,), f"cursor-{self.asks}")


class EmptyListing:
    async def ask(self, message: Any, **_: Any) -> Page[Customer]:
        return Page((), None)


async def test_a_discovery_listing_stops_at_its_page_bound(tmp_path: Path) -> None:
    from gateway.store import open_store

    endless = EndlessListing()
    systems = {system: EmptyListing() for system in System}
    systems[System.CRM] = endless  # type: ignore[assignment]
    async with open_store(f"sqlite:///{tmp_path / 'x.db'}") as store:
        report = await discover(store, systems, max_pages={System.CRM: 7})
    assert endless.asks == 7
    assert "past 7 pages" in report.failed[System.CRM]
    assert System.ERP not in report.failed
