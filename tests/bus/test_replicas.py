"""Two gateway replicas in one process, sharing one store (a SQLite file or a PostgreSQL
database) and one bus (NATS JetStream or in-process): what one commits, a subscription on
the other sees."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import websockets

from canonical import Customer, System
from gateway.governance.systems import ENV_URLS
from gateway.graphql import subscriptions
from gateway.graphql.app import create_graphql_app
from gateway.observability.metrics import build_registry
from gateway.readmodel.kinds import Kind
from gateway.readmodel.model import Change, Source, version_at
from gateway.runtime import Runtime, open_runtime
from gateway.settings import Settings
from gateway.store import OperationStatus
from tests.bus.nats_server import NATS_URL, nats_prefix
from tests.servers import free_port, serve
from tests.support.paths import POLICIES
from tests.support.store import postgres_url, sqlite_url

pytestmark = pytest.mark.anyio

PROTOCOL = "graphql-transport-ws"


@pytest.fixture(params=["sqlite+nats", "sqlite+memory", "postgresql+nats"])
def deployment(request: pytest.FixtureRequest) -> tuple[str, str]:
    """The store and the bus the replicas share."""
    store, bus = str(request.param).split("+")
    return store, bus


@pytest.fixture
def shared_store(deployment: tuple[str, str], tmp_path: Path) -> Iterator[str]:
    if deployment[0] == "postgresql":
        with postgres_url() as url:
            yield url
    else:
        yield sqlite_url(tmp_path, "shared.db")


@pytest.fixture
async def bus_url(deployment: tuple[str, str]) -> AsyncIterator[str]:
    if deployment[1] == "memory":
        yield f"memory://replicas-{secrets.token_hex(4)}"
        return
    async with nats_prefix() as prefix:
        yield f"{NATS_URL}?prefix={prefix}"


@pytest.fixture
def no_vendors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every system at a port nobody listens on: these replicas call no vendor."""
    for system in System:
        monkeypatch.setenv(ENV_URLS[system], f"http://127.0.0.1:{free_port()}")


@asynccontextmanager
async def replicas(
    tmp_path: Path, store_url: str, bus_url: str, n: int = 2
) -> AsyncIterator[list[Runtime]]:
    async with AsyncExitStack() as stack:
        runtimes = []
        for i in range(n):
            settings = Settings(
                var_dir=tmp_path / f"var{i}",
                policies_dir=POLICIES,
                store_url=store_url,
                bus_url=bus_url,
                dispatcher=False,
                feeds=False,
                profile="sandbox",
                discovery_interval=0,
            )
            runtimes.append(await stack.enter_async_context(open_runtime(settings)))
        yield runtimes


@asynccontextmanager
async def subscription(runtime: Runtime, payload: dict[str, Any]) -> AsyncIterator[Any]:
    """A graphql-transport-ws subscription on ``runtime``'s GraphQL app."""
    async with serve(create_graphql_app(runtime)) as base:
        url = base.replace("http", "ws", 1) + "/graphql"
        async with websockets.connect(url, subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
            init = {"Authorization": "Bearer demo-portal-key"}
            await ws.send(json.dumps({"type": "connection_init", "payload": init}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            yield ws


async def next_event(ws: Any) -> tuple[str, str, str]:
    event = (await next_data(ws))["customerEvents"]
    return event["type"], event["subject"], event["source"]


async def next_data(ws: Any) -> Any:
    with anyio.fail_after(10):
        message = json.loads(await ws.recv())
    assert message["type"] == "next", message
    return message["payload"]["data"]


async def test_an_operation_completed_on_one_replica_wakes_a_subscription_on_the_other(
    tmp_path: Path,
    shared_store: str,
    bus_url: str,
    no_vendors: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the subscription's fallback poll would find the change in the shared store by
    # itself; pushed far out, only the bus can wake it in time
    monkeypatch.setattr(subscriptions, "POLL_SECONDS", 3600.0)
    async with replicas(tmp_path, shared_store, bus_url) as (a, b):
        async with a.store.transaction() as tx:
            await tx.create_operation(
                id="op-1",
                kind="onboardCustomer",
                correlation_id="corr-1",
                client_id="demo-portal",
                aggregate_key="cust-1",
                input={"name": "Acme"},
            )
        query = {"query": 'subscription { operation(id: "op-1") { id status } }'}
        async with subscription(b, query) as ws:
            assert (await next_data(ws))["operation"]["status"] == "PENDING"
            async with a.store.transaction() as tx:
                operation = await tx.get_operation("op-1")
                assert operation is not None
                await tx.update_operation(operation, status=OperationStatus.SUCCEEDED)
            assert (await next_data(ws))["operation"] == {"id": "op-1", "status": "SUCCEEDED"}


async def test_a_record_applied_on_one_replica_reaches_the_others_read_model_and_events(
    tmp_path: Path, shared_store: str, bus_url: str, no_vendors: None
) -> None:
    async with replicas(tmp_path, shared_store, bus_url) as (a, b):
        await a.store.link({System.BILLING: "cus_1"}, name="Acme")
        assert a.read_model is not None
        assert b.read_model is not None
        query = {
            "query": 'subscription { customerEvents(customerId: "billing:cus_1") '
            "{ type subject source } }"
        }
        async with subscription(b, query) as ws:
            with anyio.fail_after(10):
                while b.read_model.watchers == 0:  # noqa: ASYNC110 - the server subscribes in its own time
                    await anyio.sleep(0.01)
            customer = Customer(System.BILLING, "cus_1", "Acme", email="ap@acme.example")
            await a.read_model.apply(
                [Change.of(customer, version_at(1_000.0))], source=Source.EVENTS
            )
            assert await next_event(ws) == ("billing.customer.created", "cus_1", "EVENTS")
            entry = b.read_model.record(System.BILLING, Kind.CUSTOMER, "cus_1")
            assert entry is not None
            assert entry.value == customer

            # an older state, arriving late on A, changes nothing anywhere
            older = Customer(System.BILLING, "cus_1", "Acme (old)")
            await a.read_model.apply([Change.of(older, version_at(999.0))], source=Source.EVENTS)
            renamed = Customer(System.BILLING, "cus_1", "Acme AG", email="ap@acme.example")
            await a.read_model.apply(
                [Change.of(renamed, version_at(1_001.0))], source=Source.CATCH_UP
            )
            assert await next_event(ws) == ("billing.customer.updated", "cus_1", "CATCH_UP")
            entry = b.read_model.record(System.BILLING, Kind.CUSTOMER, "cus_1")
            assert entry is not None
            assert entry.value == renamed
        # what went between them, as each replica's /metrics shows it
        shown = [metrics(runtime) for runtime in (a, b)]
        assert shown[0]["crosswalk_bus_connected"] == shown[1]["crosswalk_bus_connected"] == 1
        assert shown[1]["crosswalk_bus_received_total"] >= 2  # the two newer records
        assert shown[0]["crosswalk_bus_published_total"] >= 2
        assert shown[1]["crosswalk_bus_gaps_total"] == 0


def metrics(runtime: Runtime) -> dict[str, float]:
    registry, _ = build_registry(lambda: runtime)
    return {
        sample.name: sample.value
        for family in registry.collect()
        if family.name.startswith("crosswalk_bus")
        for sample in family.samples
    }
