"""All four flows from a client's seat: `crosswalk sandbox` + `crosswalk serve` as real
processes, GraphQL over HTTP with the demo widget key, and an operation followed over the
websocket (graphql-transport-ws) until it succeeds."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import websockets

from sandbox.demo import generate
from tests.processes.test_crash import _process, _wait
from tests.servers import free_port
from tests.support.paths import ROOT

pytestmark = pytest.mark.slow

WIDGET = {"Authorization": "Bearer demo-widget-key"}
OPS = {"Authorization": "Bearer demo-ops-key"}
FIELDS = "id status reason customerId steps { name status }"


def _gql(
    base: str,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] = WIDGET,
) -> Any:
    answer = httpx.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables or {}},
        headers=headers,
        timeout=30,
    )
    body = answer.json()
    assert "errors" not in body, body
    return body["data"]


def _finished(base: str, op_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def done() -> bool:
        op = _gql(
            base, f"query($id: ID!) {{ operation(id: $id) {{ {FIELDS} result }} }}", {"id": op_id}
        )["operation"]
        found.update(op)
        return op["status"] in ("SUCCEEDED", "NEEDS_ATTENTION")

    _wait(done, 60, f"operation {op_id}")
    return found


async def _follow(base: str, op_id: str) -> list[str]:
    """Statuses of an operation as the websocket subscription pushes them."""
    url = base.replace("http://", "ws://") + "/graphql"
    statuses: list[str] = []
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(
            json.dumps(
                {"type": "connection_init", "payload": {"Authorization": WIDGET["Authorization"]}}
            )
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        query = f'subscription {{ operation(id: "{op_id}") {{ status }} }}'
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        with anyio.fail_after(60):
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "complete":
                    return statuses
                assert message["type"] == "next", message
                statuses.append(message["payload"]["data"]["operation"]["status"])


def test_every_flow_over_http_with_the_widget_key(tmp_path: Path) -> None:
    ports = {s: free_port() for s in ("erp", "billing", "crm", "support")}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    demo = generate(20)
    sandbox_cmd = [
        sys.executable, "-m", "crosswalk", "sandbox", "--data-dir", str(tmp_path / "sandbox"),
        "--customers", "20", "--fresh", "--no-webhooks",
        *(f"--{s}-port={p}" for s, p in ports.items()),
    ]  # fmt: skip
    gateway_cmd = [
        sys.executable, "-m", "crosswalk", "serve", "--port", str(port),
        "--store", f"sqlite:///{tmp_path / 'gw.db'}", "--var-dir", str(tmp_path / "var"),
        "--policies", str(ROOT / "policies"), "--profile", "sandbox",
        *(f"--{s}-url=http://127.0.0.1:{p}" for s, p in ports.items()),
    ]  # fmt: skip
    with _process(sandbox_cmd, tmp_path / "sandbox.log"):
        for system, p in ports.items():
            _wait(
                lambda p=p: httpx.get(f"http://127.0.0.1:{p}/_sandbox/chaos").status_code == 200,
                60,
                system,
            )
        with _process(gateway_cmd, tmp_path / "gateway.log"):
            _wait(lambda: httpx.get(f"{base}/readyz").status_code == 200, 60, "the gateway")
            company = next(
                c
                for c in demo.companies
                if c.in_support and any(not o.is_closed for o in c.opportunities)
            )
            opp = next(o for o in company.opportunities if not o.is_closed)
            closing = _gql(
                base,
                "mutation($id: ID!) "
                f"{{ closeOpportunity(input: {{opportunityId: $id}}) {{ {FIELDS} }} }}",
                {"id": opp.id},
            )["closeOpportunity"]
            assert closing["status"] in ("PENDING", "RUNNING", "SUCCEEDED")
            pushed = anyio.run(_follow, base, closing["id"])
            assert pushed[-1] == "SUCCEEDED", pushed
            onboarding = _gql(
                base,
                """mutation { onboardCustomer(input: {name: "Quartzline Freight B.V.",
                   taxId: "NL812345678B01", country: "NL", paymentTerms: "NT14"},
                   idempotencyKey: "http-onboard") { id status } }""",
            )["onboardCustomer"]
            case = _gql(
                base,
                """mutation($c: ID!) { openCase(input: {customerId: $c, subject: "Sync stuck",
                   description: "Nothing since noon"}) { id } }""",
                {"c": f"erp:{company.bp}"},
                headers={**WIDGET, "Idempotency-Key": "http-case"},
            )["openCase"]
            sub = next(
                s
                for c in demo.companies
                if c.in_support
                for s in c.subscriptions
                if s.status == "active"
            )
            owner = next(c for c in demo.companies if sub in c.subscriptions)
            renewal = _gql(
                base,
                "mutation($c: ID!, $s: ID!) "
                "{ renewSubscription(input: {customerId: $c, subscriptionId: $s}) { id } }",
                {"c": f"billing:{owner.billing_id}", "s": sub.id},
            )["renewSubscription"]
            for op in (onboarding, case, renewal):
                assert _finished(base, op["id"])["status"] == "SUCCEEDED"
            opened = _finished(base, case["id"])
            ticket = opened["result"]["create_case"]["id"]
            escalation = _gql(
                base,
                "mutation($c: ID!, $t: ID!, $r: String!) "
                "{ escalateCase(input: {customerId: $c, caseId: $t, reason: $r}) { id } }",
                {"c": f"support:{company.support_id}", "t": str(ticket), "r": "VIP waiting"},
            )["escalateCase"]
            assert _finished(base, escalation["id"])["status"] == "SUCCEEDED"
            # operators see no dead letters; the widget key may not look at them
            assert _gql(base, "{ deadLetters { items { id } } }", headers=OPS)["deadLetters"] == {
                "items": []
            }
            denied = httpx.post(
                f"{base}/graphql",
                json={"query": "{ deadLetters { items { id } } }"},
                headers=WIDGET,
            ).json()
            assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
