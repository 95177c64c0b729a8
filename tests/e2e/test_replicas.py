"""Two gateway replicas on one PostgreSQL database and one NATS server, as real processes.

`crosswalk sandbox` runs the four systems (their webhooks go to replica A); two
`crosswalk serve --store postgresql://... --bus nats://...` processes are the replicas.

- 600 closeOpportunity mutations, each with its own Idempotency-Key, are sent to the two
  replicas in turn; when a third are answered, replica B is killed with SIGKILL and started
  again, and every request is sent again (to the other replica than the first time) until
  answered. In the sandbox systems' own data each opportunity then has exactly one ERP
  order, its subscriptions, an active entitlement and the CRM stamp; every retry got the
  first answer; each customer's operations finished in the order they were accepted.
- A subscription held on replica B sees an operation accepted and completed by replica A,
  and a billing event taken (by webhook) and applied by replica A.
- Throughout, each sandbox's own request count, sampled twice a second, stays within the
  policy rate (the replicas share it: each spends its share of one budget).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx
import pytest
import websockets

from sandbox.demo import generate
from tests.bus.nats_server import delete_streams, nats_prefix_name, require_nats
from tests.processes.test_crash import (
    CLOSE,
    WIDGET,
    _check_sandbox_data,
    _process,
    _send_all,
    _wait,
)
from tests.servers import free_port
from tests.support.paths import ROOT

pytestmark = pytest.mark.slow

POSTGRES = os.environ.get(
    "CROSSWALK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
NATS = "nats://127.0.0.1:4222"
SYSTEMS = ("erp", "billing", "crm", "support")
CUSTOMERS = 850
MUTATIONS = 600
#: the policy rate per system in this test (calls/s; the sandboxes' own limits are higher)
RATE = 40.0
BURST = 40
OPERATION = "query($id: ID!) { operation(id: $id) { id status customerId createdAt updatedAt } }"


async def _done_messages(url: str) -> list[tuple[str, int, int]]:
    """(customer, message id, finished at) of every delivered message, in id order."""
    connection = await asyncpg.connect(url, timeout=5)
    try:
        rows = await connection.fetch(
            "SELECT aggregate_key, id, updated_at FROM outbox WHERE status = 'done' "
            "ORDER BY aggregate_key, id"
        )
    finally:
        await connection.close()
    return [(row[0], row[1], row[2]) for row in rows]


async def _admin(statement: str) -> None:
    admin = await asyncpg.connect(POSTGRES, timeout=5)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh PostgreSQL database of the test's own, dropped after."""
    name = f"cw_replicas_{uuid.uuid4().hex[:8]}"
    try:
        anyio.run(_admin, f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES} ({exc}); .ci/run starts it")
    try:
        yield f"{POSTGRES.rpartition('/')[0]}/{name}"
    finally:
        anyio.run(_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _policies(tmp: Path) -> Path:
    """The shipped policies at RATE per system and quicker lease recovery."""
    folder = tmp / "policies"
    shutil.copytree(ROOT / "policies", folder)
    systems = (folder / "systems.toml").read_text()
    systems = re.sub(
        r"rate = \{ per_second = [0-9.]+, burst = [0-9]+ \}",
        f"rate = {{ per_second = {RATE}, burst = {BURST} }}",
        systems,
    )
    (folder / "systems.toml").write_text(systems)
    outbox = (folder / "outbox.toml").read_text()
    outbox = re.sub(r"lease_seconds = [0-9.]+", "lease_seconds = 8.0", outbox)
    outbox = re.sub(r"delivery_timeout = [0-9.]+", "delivery_timeout = 6.0", outbox)
    (folder / "outbox.toml").write_text(outbox)
    return folder


class Replicas:
    def __init__(self, tmp: Path, store: str, prefix: str) -> None:
        self.tmp = tmp
        self.store = store
        # streams and membership of the test's own on the shared server
        self.bus = f"{NATS}?prefix={prefix}"
        self.sandbox = {s: free_port() for s in SYSTEMS}
        self.ports = [free_port(), free_port()]
        self.policies = _policies(tmp)

    def base(self, n: int) -> str:
        return f"http://127.0.0.1:{self.ports[n]}"

    def sandbox_cmd(self) -> list[str]:
        return [
            sys.executable, "-m", "crosswalk", "sandbox", "--fresh",
            "--data-dir", str(self.tmp / "sandbox"), "--customers", str(CUSTOMERS),
            "--gateway-url", self.base(0),
            *(f"--{s}-port={p}" for s, p in self.sandbox.items()),
        ]  # fmt: skip

    def gateway_cmd(self, n: int) -> list[str]:
        return [
            sys.executable, "-m", "crosswalk", "serve", "--profile", "sandbox",
            "--port", str(self.ports[n]), "--var-dir", str(self.tmp / f"var{n}"),
            "--policies", str(self.policies), "--store", self.store, "--bus", self.bus,
            *(f"--{s}-url=http://127.0.0.1:{p}" for s, p in self.sandbox.items()),
        ]  # fmt: skip

    @contextmanager
    def replica(self, n: int, log: str) -> Iterator[Any]:
        with _process(self.gateway_cmd(n), self.tmp / log) as proc:
            _wait(
                lambda: httpx.get(f"{self.base(n)}/readyz").status_code == 200,
                90,
                f"replica {n}",
            )
            yield proc


def busiest(ports: dict[str, int], window: float) -> dict[str, int]:
    """Per sandbox, the most calls it received in any ``window`` seconds (from its own
    timestamps of every call)."""
    most = {}
    with httpx.Client(timeout=30.0) as http:
        for system, port in ports.items():
            stamps = http.get(f"http://127.0.0.1:{port}/_sandbox/stats").json()["timestamps"]
            first, top = 0, 0
            for last, moment in enumerate(stamps):
                while moment - stamps[first] >= window:
                    first += 1
                top = max(top, last - first + 1)
            most[system] = top
    return most


def _operations(replicas: Replicas, ids: list[str]) -> list[dict[str, Any]]:
    found = []
    with httpx.Client(timeout=30.0) as http:
        for n, op_id in enumerate(ids):
            body = http.post(
                f"{replicas.base(n % 2)}/graphql",
                json={"query": OPERATION, "variables": {"id": op_id}},
                headers=WIDGET,
            ).json()
            found.append(body["data"]["operation"])
    return found


async def _next_message(ws: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await ws.recv())
    assert message["type"] in ("next", "complete"), message
    return message


async def _subscribe(base: str, query: str) -> Any:
    ws = await websockets.connect(
        base.replace("http://", "ws://") + "/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
    )
    await ws.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer demo-ops-key"}})
    )
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
    return ws


async def _cross_replica_subscriptions(replicas: Replicas, opportunity: str) -> None:
    """On B: an operation accepted and completed by A; a billing event applied by A."""
    async with httpx.AsyncClient(timeout=30.0) as http:
        body = (
            await http.post(
                f"{replicas.base(0)}/graphql",
                json={"query": CLOSE, "variables": {"id": opportunity}},
                headers={**WIDGET, "Idempotency-Key": f"sub-{opportunity}"},
            )
        ).json()
        operation = body["data"]["closeOpportunity"]["id"]
        ws = await _subscribe(
            replicas.base(1), f'subscription {{ operation(id: "{operation}") {{ status }} }}'
        )
        statuses = []
        with anyio.fail_after(90):
            async with ws:
                while (message := await _next_message(ws))["type"] == "next":
                    statuses.append(message["payload"]["data"]["operation"]["status"])
        assert statuses[-1] == "SUCCEEDED", statuses
        found = (
            await http.post(
                f"{replicas.base(1)}/graphql",
                json={"query": OPERATION, "variables": {"id": operation}},
                headers=WIDGET,
            )
        ).json()["data"]["operation"]
        customer = found["customerId"]
        ws = await _subscribe(
            replicas.base(1),
            f'subscription {{ customerEvents(customerId: "{customer}") {{ type system }} }}',
        )
        async with ws:
            # a change in the billing sandbox's own API: its webhook goes to replica A
            identity = (
                await http.post(
                    f"{replicas.base(1)}/graphql",
                    json={
                        "query": "query($id: ID!) { customer(id: $id) { identity { billing } } }",
                        "variables": {"id": customer},
                    },
                    headers={"Authorization": "Bearer demo-portal-key"},
                )
            ).json()
            billing_id = identity["data"]["customer"]["identity"]["billing"]
            answer = await http.post(
                f"http://127.0.0.1:{replicas.sandbox['billing']}/v1/customers/{billing_id}",
                data={"email": "replicas@example.com"},
                headers={"Authorization": "Bearer sk_test_crosswalk"},
            )
            assert answer.status_code == 200, answer.text
            seen = []
            with anyio.fail_after(30):  # the customer's other news may come first
                while "BILLING" not in seen:
                    message = await _next_message(ws)
                    seen.append(message["payload"]["data"]["customerEvents"]["system"])


def test_two_replicas_share_one_store_one_bus_and_one_quota(tmp_path: Path, database: str) -> None:
    require_nats()
    prefix = nats_prefix_name()
    try:
        _two_replicas(tmp_path, database, prefix)
    finally:
        anyio.run(delete_streams, prefix)


def _two_replicas(tmp_path: Path, database: str, prefix: str) -> None:
    replicas = Replicas(tmp_path, database, prefix)
    demo = generate(CUSTOMERS)
    targets = [
        (opp.id, company)
        for company in demo.companies
        if company.in_support
        for opp in company.opportunities
        if not opp.is_closed
    ][: MUTATIONS + 1]
    assert len(targets) == MUTATIONS + 1
    probe, _ = targets.pop()
    requests = [(opp, f"replicas-{opp}") for opp, _ in targets]
    with _process(replicas.sandbox_cmd(), tmp_path / "sandbox.log"):
        for system, port in replicas.sandbox.items():
            _wait(
                lambda port=port: httpx.get(f"http://127.0.0.1:{port}/_sandbox/chaos").status_code
                == 200,
                120,
                f"{system} sandbox",
            )
        with replicas.replica(0, "a.log"):
            with replicas.replica(1, "b-1.log") as b:
                anyio.run(_cross_replica_subscriptions, replicas, probe)
                answered = anyio.run(
                    lambda: _send_all(
                        lambda i, attempt: replicas.base((i + attempt) % 2),
                        requests,
                        until_answered=False,
                        stop_after=MUTATIONS // 3,
                    )
                )
                b.send_signal(signal.SIGKILL)
                b.wait()
            assert len(answered) >= MUTATIONS // 3
            with replicas.replica(1, "b-2.log"):
                # each request to the other replica than the first time, until answered
                answers = anyio.run(
                    lambda: _send_all(
                        lambda i, attempt: replicas.base((1 + i + attempt) % 2),
                        requests,
                        until_answered=True,
                    )
                )
                assert len(answers) == MUTATIONS, f"{MUTATIONS - len(answers)} unanswered"
                for key, first_answer in answered.items():
                    assert answers[key]["id"] == first_answer["id"], "a second operation"
                ids = [answers[key]["id"] for _, key in requests]
                assert len(set(ids)) == MUTATIONS

                def done() -> bool:
                    ops = _operations(replicas, ids)
                    assert not [o for o in ops if o["status"] == "NEEDS_ATTENTION"]
                    return all(o["status"] == "SUCCEEDED" for o in ops)

                _wait(done, 300, "every operation to succeed")
        # the replicas spent one budget: in any 10 s, at most the policy's 10 s and its burst
        most = busiest(replicas.sandbox, 10.0)
        _check_sandbox_data(replicas.sandbox, targets, demo)
    # per-customer order across replicas: each customer's messages finished in id order
    rows = anyio.run(_done_messages, database)
    assert len(rows) >= MUTATIONS * 4
    last: dict[str, tuple[int, int]] = {}
    for aggregate, message, finished in rows:
        if aggregate in last:
            earlier, at = last[aggregate]
            assert finished >= at, f"{aggregate}: message {message} finished before {earlier}"
        last[aggregate] = (message, finished)
    over = {s: n for s, n in most.items() if n > RATE * 10 + BURST}
    print(f"busiest 10 s per sandbox: {most} (allowed {RATE * 10 + BURST:.0f})")
    assert not over, f"more vendor calls than the policy allows in 10 s: {over}"
