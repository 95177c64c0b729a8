"""The crash test: real processes, kill -9 mid-burst, restart, resend, exactly once.

`crosswalk sandbox` runs the four systems; `crosswalk serve` runs the gateway on a SQLite
file. 300 closeOpportunity mutations go out from 16 concurrent clients, each with its own
Idempotency-Key. When a third have been answered the gateway is killed with SIGKILL, then
started again on the same store, and every request is sent again with the same key until
it is answered. Then, in the sandbox systems' own data, each opportunity must have exactly
one ERP sales order, one billing subscription per billing interval of its products, an
active support entitlement, and the CRM stamp carrying that one order's number.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from gateway.store import open_store
from sandbox.demo import generate
from tests.servers import free_port
from tests.support.paths import ROOT
from tests.support.processes import stop_process

pytestmark = pytest.mark.slow

CUSTOMERS = 450
MUTATIONS = 300
CLIENTS = 16
WIDGET = {"Authorization": "Bearer demo-widget-key"}
CLOSE = """mutation($id: ID!) { closeOpportunity(input: {opportunityId: $id}) { id status } }"""
OPERATION = "query($id: ID!) { operation(id: $id) { id status reason } }"


def _policies(tmp: Path) -> Path:
    """The shipped policies with quicker lease recovery and roomier actor rates (the
    sandbox systems' own limits still apply), so the test runs in about a minute."""
    folder = tmp / "policies"
    shutil.copytree(ROOT / "policies", folder)
    systems = (folder / "systems.toml").read_text()
    systems = re.sub(
        r"rate = \{ per_second = [0-9.]+, burst = [0-9]+ \}",
        "rate = { per_second = 150.0, burst = 150 }",
        systems,
    )
    (folder / "systems.toml").write_text(systems)
    outbox = (folder / "outbox.toml").read_text()
    outbox = re.sub(r"lease_seconds = [0-9.]+", "lease_seconds = 8.0", outbox)
    outbox = re.sub(r"delivery_timeout = [0-9.]+", "delivery_timeout = 6.0", outbox)
    (folder / "outbox.toml").write_text(outbox)
    return folder


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@contextmanager
def _process(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        yield proc
    finally:
        stop_process(proc, signal.SIGTERM, within=20)


def _gateway_cmd(tmp: Path, port: int, policies: Path, ports: dict[str, int]) -> list[str]:
    return [
        sys.executable, "-m", "crosswalk", "serve",
        "--port", str(port),
        "--store", f"sqlite:///{tmp / 'gw.db'}",
        "--policies", str(policies),
        "--var-dir", str(tmp / "var"),
        "--profile", "sandbox",
        *(f"--{s}-url=http://127.0.0.1:{ports[s]}" for s in ("erp", "billing", "crm", "support")),
    ]  # fmt: skip


async def _send_all(
    base: str | Callable[[int, int], str],
    requests: list[tuple[str, str]],
    *,
    until_answered: bool,
    stop_after: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Send (opportunity, key) pairs from CLIENTS concurrent clients; answers by key.

    ``base`` is the gateway, or a function of (request number, attempt) that names the
    gateway for each try (several replicas)."""
    answers: dict[str, dict[str, Any]] = {}
    queue = list(enumerate(requests))
    base_for = base if callable(base) else lambda _i, _attempt: base
    enough = anyio.Event()

    async def client() -> None:
        async with httpx.AsyncClient(timeout=30.0) as http:
            while queue and not enough.is_set():
                i, (opp, key) = queue.pop()
                for attempt in range(400 if until_answered else 1):
                    try:
                        answer = await http.post(
                            f"{base_for(i, attempt)}/graphql",
                            json={"query": CLOSE, "variables": {"id": opp}},
                            headers={**WIDGET, "Idempotency-Key": key},
                        )
                        body = answer.json()
                    except (httpx.HTTPError, ValueError):
                        body = None
                    if body and body.get("data") and body["data"].get("closeOpportunity"):
                        answers[key] = body["data"]["closeOpportunity"]
                        break
                    if body and body.get("errors"):
                        code = body["errors"][0].get("extensions", {}).get("code")
                        assert code in (
                            "SYSTEM_UNAVAILABLE",
                            "SYSTEM_TIMEOUT",
                            "THROTTLED",
                            "IDEMPOTENCY_CONFLICT",
                        ), body
                    if not until_answered:
                        break
                    await anyio.sleep(0.25)
                if stop_after is not None and len(answers) >= stop_after:
                    enough.set()

    async with anyio.create_task_group() as tg:
        for _ in range(CLIENTS):
            tg.start_soon(client)
    return answers


async def _statuses(db: Path) -> dict[str, int]:
    """Operations by status in the killed gateway's store."""
    async with open_store(f"sqlite:///{db}") as store:
        counts: Counter[str] = Counter()
        after = None
        while True:
            page = await store.list_operations(limit=200, after=after)
            counts.update(op.status.value for op in page.items)
            if page.next_cursor is None:
                return dict(counts)
            after = page.next_cursor


def _all_succeeded(base: str, operations: dict[str, str]) -> bool:
    pending = 0
    with httpx.Client(timeout=30.0) as http:
        for op_id in operations.values():
            body = http.post(
                f"{base}/graphql",
                json={"query": OPERATION, "variables": {"id": op_id}},
                headers=WIDGET,
            ).json()
            status = body["data"]["operation"]["status"]
            assert status != "NEEDS_ATTENTION", body
            pending += status != "SUCCEEDED"
    return pending == 0


def test_kill_9_mid_burst_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    ports = {s: free_port() for s in ("erp", "billing", "crm", "support")}
    gateway_port = free_port()
    base = f"http://127.0.0.1:{gateway_port}"
    policies = _policies(tmp_path)
    demo = generate(CUSTOMERS)
    targets = [
        (opp.id, company)
        for company in demo.companies
        if company.in_support
        for opp in company.opportunities
        if not opp.is_closed
    ][:MUTATIONS]
    assert len(targets) == MUTATIONS
    requests = [(opp, f"crash-{opp}") for opp, _ in targets]
    sandbox_cmd = [
        sys.executable, "-m", "crosswalk", "sandbox",
        "--data-dir", str(tmp_path / "sandbox"),
        "--customers", str(CUSTOMERS), "--fresh", "--no-webhooks",
        *(f"--{s}-port={p}" for s, p in ports.items()),
    ]  # fmt: skip
    with _process(sandbox_cmd, tmp_path / "sandbox.log"):
        for system, port in ports.items():
            _wait(
                lambda port=port: httpx.get(f"http://127.0.0.1:{port}/_sandbox/chaos").status_code
                == 200,
                120,
                f"{system} sandbox",
            )
        gateway = _gateway_cmd(tmp_path, gateway_port, policies, ports)
        with _process(gateway, tmp_path / "gateway-1.log") as first:
            _wait(lambda: httpx.get(f"{base}/readyz").status_code == 200, 60, "the gateway")
            answered = anyio.run(
                lambda: _send_all(base, requests, until_answered=False, stop_after=MUTATIONS // 3)
            )
            first.send_signal(signal.SIGKILL)
            first.wait()
        assert len(answered) >= MUTATIONS // 3
        statuses = anyio.run(_statuses, tmp_path / "gw.db")
        assert statuses.get("SUCCEEDED", 0) < sum(statuses.values()), f"not mid-flight: {statuses}"
        with _process(gateway, tmp_path / "gateway-2.log"):
            _wait(
                lambda: httpx.get(f"{base}/readyz").status_code == 200, 60, "the restarted gateway"
            )
            answers = anyio.run(lambda: _send_all(base, requests, until_answered=True))
            assert len(answers) == MUTATIONS, f"{MUTATIONS - len(answers)} requests never answered"
            for key, first_answer in answered.items():
                assert (
                    answers[key]["id"] == first_answer["id"]
                ), "a resent request started a second operation"
            operations = {key: answer["id"] for key, answer in answers.items()}
            assert len(set(operations.values())) == MUTATIONS
            _wait(lambda: _all_succeeded(base, operations), 240, "every operation to succeed")
        _check_sandbox_data(ports, targets, demo)


def _get_json(http: httpx.Client, url: str, **kwargs: Any) -> Any:
    """GET through the sandbox's own rate limits: wait out 429/503 as told, then read."""
    for _ in range(50):
        answer = http.get(url, **kwargs)
        if answer.status_code not in (429, 503):
            answer.raise_for_status()
            return answer.json()
        time.sleep(float(answer.headers.get("Retry-After", "0.5")))
    raise AssertionError(f"{url} kept throttling")


def _check_sandbox_data(ports: dict[str, int], targets: list[tuple[str, Any]], demo: Any) -> None:
    with httpx.Client(timeout=30.0) as http:
        erp = f"http://127.0.0.1:{ports['erp']}/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder"
        orders: dict[str, list[str]] = {}
        for opp, _ in targets:
            body = _get_json(
                http,
                erp,
                params={"$filter": f"PurchaseOrderByCustomer eq '{opp}'", "$format": "json"},
                auth=("sandbox", "sandbox"),
            )
            orders[opp] = [o["SalesOrder"] for o in body["d"]["results"]]
        assert {opp: len(found) for opp, found in orders.items() if len(found) != 1} == {}
        subscriptions: Counter[str] = Counter()
        after = None
        while True:
            params: dict[str, Any] = {"limit": 100, **({"starting_after": after} if after else {})}
            page = _get_json(
                http,
                f"http://127.0.0.1:{ports['billing']}/v1/subscriptions",
                params=params,
                headers={"Authorization": "Bearer sk_test_crosswalk"},
            )
            for sub in page["data"]:
                if sub["metadata"].get("crm_opportunity_id"):
                    subscriptions[sub["metadata"]["crm_opportunity_id"]] += 1
            if not page["has_more"]:
                break
            after = page["data"][-1]["id"]
        for opp, company in targets:
            products = next(o.products for o in company.opportunities if o.id == opp)
            intervals = {demo.product(code).interval for code in products}
            assert subscriptions[opp] == len(intervals), (opp, subscriptions[opp], intervals)
        organizations: dict[int, Any] = {}
        stamps: dict[str, Any] = {}
        for start in range(0, len(targets), 100):
            batch = targets[start : start + 100]
            ids = ",".join(str(company.support_id) for _, company in batch)
            found = _get_json(
                http,
                f"http://127.0.0.1:{ports['support']}/api/v2/organizations/show_many",
                params={"ids": ids},
                auth=("agent@example.com/token", "sandbox"),
            )
            organizations.update({org["id"]: org for org in found["organizations"]})
            quoted = ",".join(f"'{opp}'" for opp, _ in batch)
            soql = (
                f"SELECT Id, StageName, ERP_Order_Number__c FROM Opportunity WHERE Id IN ({quoted})"
            )
            rows = _get_json(
                http,
                f"http://127.0.0.1:{ports['crm']}/services/data/v60.0/query",
                params={"q": soql},
                headers={"Authorization": "Bearer 00DSANDBOX!crosswalk"},
            )
            stamps.update({row["Id"]: row for row in rows["records"]})
        for opp, company in targets:
            org = organizations[company.support_id]
            assert org["organization_fields"]["entitlement_status"] == "active"
            assert stamps[opp]["StageName"] == "Closed Won"
            assert stamps[opp]["ERP_Order_Number__c"] == orders[opp][0]
