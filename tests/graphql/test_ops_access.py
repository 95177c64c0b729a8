"""Operations are visible to the client that started them and to ops; /metrics and the
details of /readyz need the ops scope unless the policy opens them."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from gateway.app import OpsRoutes, create_app
from gateway.governance.clients import ClientsPolicy, Issuer, OpsEndpoints, load_clients_policy
from gateway.graphql.app import create_graphql_app
from gateway.graphql.schema import get_schema
from gateway.settings import Settings
from gateway.store import OutboxStatus
from tests.graphql.conftest import Runtime
from tests.graphql.transports import over_http, over_ws
from tests.ops import OPS_HEADERS, ops_client
from tests.servers import serve
from tests.support.paths import ROOT

pytestmark = pytest.mark.anyio

ISSUER = "https://login.example.test/"
SECRET = "a-test-secret-that-is-long-enough-for-hs256"
QUERY = "query($id: ID!) { operation(id: $id) { id status kind } }"


def _token(subject: str) -> str:
    claims = {
        "iss": ISSUER,
        "aud": "crosswalk",
        "sub": subject,
        "exp": int(time.time()) + 600,
        "scope": "operation:read customer:read",
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _policy() -> ClientsPolicy:
    shipped = load_clients_policy(ROOT / "policies" / "clients.toml")
    issuer = Issuer(issuer=ISSUER, algorithm="HS256", key=SECRET, audience="crosswalk")
    return dataclasses.replace(shipped, issuers={ISSUER: issuer})


async def _operation(store: Any, op_id: str, client_id: str) -> None:
    async with store.transaction() as tx:
        await tx.create_operation(
            id=op_id,
            kind="openCase",
            correlation_id=f"corr-{op_id}",
            client_id=client_id,
            aggregate_key="cw_1",
            input={"subject": "x"},
        )


@pytest.fixture
async def base(runtime: Runtime) -> AsyncIterator[str]:
    await _operation(runtime.store, "op_widget", "demo-widget")
    await _operation(runtime.store, "op_alice", f"alice@{ISSUER}")
    app = create_graphql_app(runtime, schema=get_schema(), clients=_policy())
    async with serve(app) as url:
        yield url


@pytest.mark.parametrize(
    ("key", "op_id", "visible"),
    [
        ("demo-widget-key", "op_widget", True),
        ("demo-portal-key", "op_widget", False),
        ("demo-ops-key", "op_widget", True),
        ("demo-ops-key", "op_alice", True),
        ("demo-widget-key", "op_alice", False),
        ("jwt:alice", "op_alice", True),
        ("jwt:bob", "op_alice", False),
        ("jwt:alice", "op_widget", False),
    ],
)
async def test_operations_are_visible_to_their_client_and_ops(
    base: str, key: str, op_id: str, visible: bool
) -> None:
    credential = _token(key.removeprefix("jwt:")) if key.startswith("jwt:") else key
    payload = {"query": QUERY, "variables": {"id": op_id}}
    http = await over_http(base, credential, payload)
    assert http.errors == []
    assert (http.data["operation"] is not None) is visible
    if visible:
        assert http.data["operation"]["id"] == op_id
    # the subscription follows the same rule: someone else's operation is unknown
    subscription = {
        "query": "subscription($id: ID!) { operation(id: $id) { id status } }",
        "variables": {"id": op_id},
    }
    ws = await over_ws(base, credential, subscription, limit=1)
    if visible:
        assert ws.status == "next"
        assert ws.data == {"operation": {"id": op_id, "status": "PENDING"}}
    else:
        assert ws.codes == ["NOT_FOUND"], ws


# ---------------------------------------------------------------- /metrics and /readyz


@dataclasses.dataclass
class _State:
    system: str
    healthy: bool = True
    breaker: str = "closed"
    queue_depth: int = 0


class _Systems:
    def states(self) -> list[_State]:
        return [_State("erp")]

    def snapshots(self) -> list[Any]:
        return []


class _Store:
    async def outbox_status(self) -> OutboxStatus:
        return OutboxStatus(counts={})

    async def reconciliation_runs(self, *, limit: int = 20) -> list[Any]:
        return []


@dataclasses.dataclass
class _Ready:
    systems: Any = dataclasses.field(default_factory=_Systems)
    store: Any = dataclasses.field(default_factory=_Store)
    ready: bool = True


def _ops_app(policy: ClientsPolicy) -> Starlette:
    ops = OpsRoutes(policy, lambda: _Ready())  # type: ignore[arg-type,return-value]
    return Starlette(
        routes=[
            Route("/metrics", ops.metrics, methods=["GET"]),
            Route("/readyz", ops.readyz, methods=["GET"]),
        ]
    )


async def test_metrics_and_readyz_details_need_the_ops_scope() -> None:
    app = _ops_app(load_clients_policy(ROOT / "policies" / "clients.toml"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        anonymous = await http.get("/metrics")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        portal = await http.get("/metrics", headers={"Authorization": "Bearer demo-portal-key"})
        assert portal.status_code == 403
        assert portal.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        # a bare readyz for load balancers: status only
        bare = await http.get("/readyz")
        assert bare.status_code == 200
        assert bare.json() == {"status": "ready"}
        not_ops = await http.get("/readyz", headers={"Authorization": "Bearer demo-portal-key"})
        assert not_ops.json() == {"status": "ready"}
    async with ops_client(transport=transport) as ops:
        metrics = await ops.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        detailed = await ops.get("/readyz")
        assert detailed.json()["systems"][0]["system"] == "erp"


async def test_ops_endpoints_can_be_opened_by_policy() -> None:
    policy = dataclasses.replace(
        load_clients_policy(ROOT / "policies" / "clients.toml"), ops=OpsEndpoints(access="open")
    )
    transport = httpx.ASGITransport(app=_ops_app(policy))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        assert (await http.get("/metrics")).status_code == 200
        assert "systems" in (await http.get("/readyz")).json()


async def test_the_separate_ops_port_app_needs_no_key() -> None:
    ops = OpsRoutes(  # type: ignore[arg-type]
        load_clients_policy(ROOT / "policies" / "clients.toml"), lambda: _Ready()
    )
    transport = httpx.ASGITransport(app=ops.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        assert (await http.get("/metrics")).status_code == 200
        assert "systems" in (await http.get("/readyz")).json()


async def test_the_gateway_app_guards_its_ops_endpoints(tmp_path: Path) -> None:
    app = create_app(Settings(var_dir=tmp_path, policies_dir=ROOT / "policies", profile="sandbox"))
    transport = httpx.ASGITransport(app=app)  # no lifespan: the runtime is not open
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        assert (await http.get("/metrics")).status_code == 401
        starting = await http.get("/readyz")
        assert starting.status_code == 503
        assert starting.json() == {"status": "starting"}
        assert (await http.get("/metrics", headers=OPS_HEADERS)).status_code == 200
