"""The audit trail through `crosswalk up`: vendor calls of reads and of a mutation's
saga in Query.trace, by correlation id and by business key; Query.auditLog pages."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from sandbox.demo import generate
from tests.support.upstack import UpStack, running_up, wait_linked

pytestmark = [pytest.mark.slow]

CUSTOMERS = 20
WIDGET = "demo-widget-key"
PORTAL = "demo-portal-key"
OPS = "demo-ops-key"
SYSTEMS = {"ERP", "BILLING", "CRM", "SUPPORT"}

TRACE = """query Trace($cid: String, $key: String) {
  trace(correlationId: $cid, businessKey: $key) {
    id at actor action system subject outcome detail correlationId
  }
}"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    with running_up(tmp_path_factory.mktemp("audit"), customers=CUSTOMERS) as up:
        yield up


def gql(
    stack: UpStack,
    query: str,
    key: str,
    variables: dict[str, Any] | None = None,
    *,
    correlation_id: str | None = None,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    if correlation_id is not None:
        headers["X-Correlation-ID"] = correlation_id
    answer = httpx.post(
        f"{stack.base}/graphql",
        json={"query": query, "variables": variables or {}},
        headers=headers,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def trace_until(
    stack: UpStack,
    ready: Callable[[list[dict[str, Any]]], bool],
    *,
    client: str = OPS,
    cid: str | None = None,
    business_key: str | None = None,
) -> list[dict[str, Any]]:
    """The trace once ``ready`` says it is complete (vendor calls are written in batches)."""
    deadline = time.monotonic() + 30  # a hang guard, not a timing check
    while True:
        body = gql(stack, TRACE, client, {"cid": cid, "key": business_key})
        assert "errors" not in body, body
        entries: list[dict[str, Any]] = body["data"]["trace"]
        if ready(entries):
            return entries
        assert time.monotonic() < deadline, f"trace never complete: {entries}"
        time.sleep(0.1)


def calls(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e["action"] == "vendor.call"]


def systems_called(entries: list[dict[str, Any]]) -> set[str]:
    return {e["system"] for e in calls(entries)}


def in_order(entries: list[dict[str, Any]]) -> bool:
    """In time order, ties by id, each entry once."""
    keys = [(datetime.fromisoformat(e["at"]), int(e["id"])) for e in entries]
    return keys == sorted(keys) and len({k[1] for k in keys}) == len(keys)


def read_360(stack: UpStack, bp: str, correlation_id: str) -> None:
    body = gql(
        stack,
        # maxAge 0: asked of the systems now, whatever the read model already holds
        "query($id: ID!) { customer(id: $id, maxAge: 0) { name "
        "invoices(first: 1) { nodes { id } } cases(first: 1) { nodes { id } } "
        "subscriptions(first: 1) { nodes { id } } "
        "opportunities(first: 1) { nodes { id } } } }",
        WIDGET,
        {"id": f"erp:{bp}"},
        correlation_id=correlation_id,
    )
    assert "errors" not in body, body


def test_a_customer_360_reads_vendor_calls_are_in_its_trace(stack: UpStack) -> None:
    company = next(c for c in generate(CUSTOMERS).companies if c.in_support)
    wait_linked(stack, f"erp:{company.bp}", ("billing", "crm", "support"))
    read_360(stack, company.bp, "audit-read-1")
    entries = trace_until(stack, lambda e: systems_called(e) == SYSTEMS, cid="audit-read-1")
    assert in_order(entries)
    for entry in calls(entries):
        detail = entry["detail"]
        assert entry["actor"] == "demo-widget"
        assert entry["correlationId"] == "audit-read-1"
        assert entry["outcome"] == detail["outcome"] == "ok"
        assert set(detail) == {
            "system",
            "method",
            "path",
            "status",
            "latency_ms",
            "attempt",
            "outcome",
        }
        assert "?" not in detail["path"]
        assert entry["subject"] == f"{detail['system']}:{detail['method']} {detail['path']}"
        assert detail["status"] == 200
        assert detail["attempt"] == 1
        assert detail["latency_ms"] > 0
    # the widget (operation:read) sees its own entries; the portal sees none of them
    assert trace_until(stack, lambda e: bool(e), client=WIDGET, cid="audit-read-1") == entries
    assert trace_until(stack, lambda e: True, client=PORTAL, cid="audit-read-1") == []


def test_a_close_opportunitys_steps_and_calls_are_in_its_trace(stack: UpStack) -> None:
    opportunity = next(
        opp.id
        for company in generate(CUSTOMERS).companies
        if company.in_support
        for opp in company.opportunities
        if not opp.is_closed
    )
    body = gql(
        stack,
        "mutation($id: ID!) { closeOpportunity(input: {opportunityId: $id}) "
        "{ id correlationId } }",
        WIDGET,
        {"id": opportunity},
        correlation_id="audit-close-1",
    )
    assert "errors" not in body, body
    operation = body["data"]["closeOpportunity"]
    assert operation["correlationId"] == "audit-close-1"
    deadline = time.monotonic() + 30  # a hang guard: the saga runs in the background
    while True:
        view = gql(
            stack,
            "query($id: ID!) { operation(id: $id) { status steps { name status } } }",
            WIDGET,
            {"id": operation["id"]},
        )["data"]["operation"]
        if view["status"] == "SUCCEEDED":
            break
        assert view["status"] in ("PENDING", "RUNNING"), view
        assert time.monotonic() < deadline, view
        time.sleep(0.1)
    done = [s["name"] for s in view["steps"] if s["status"] == "SUCCEEDED"]

    def unserved(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The steps with no call to their system since the step before them: every
        step's vendor calls come after the step before it and before the step itself."""
        accepted = [e["at"] for e in entries if e["action"] == "mutation.closeOpportunity"]
        previous = accepted[0] if accepted else ""
        missing = []
        for step in (e for e in entries if e["action"] == "saga.step"):
            system = step["detail"]["system"].upper()
            if not any(
                c["system"] == system and previous < c["at"] < step["at"] for c in calls(entries)
            ):
                missing.append(step)
            previous = step["at"]
        return missing

    def finished(entries: list[dict[str, Any]]) -> bool:
        steps = [e for e in entries if e["action"] == "saga.step"]
        # the last step's calls may still wait in the writer's queue: wait for them too
        return len(steps) == len(done) and not unserved(entries)

    entries = trace_until(stack, finished, cid="audit-close-1")
    assert in_order(entries)
    assert systems_called(entries) == SYSTEMS
    # validation reads the deal from the systems, then the mutation is accepted
    accepted = next(i for i, e in enumerate(entries) if e["action"] != "vendor.call")
    assert entries[accepted]["action"] == "mutation.closeOpportunity"
    assert entries[accepted]["subject"] == f"operation:{operation['id']}"
    assert all(e["detail"]["method"] == "GET" for e in entries[:accepted])
    assert {e["actor"] for e in entries} == {"demo-widget"}
    steps = [e for e in entries if e["action"] == "saga.step"]
    assert [s["detail"]["step"] for s in steps] == done
    assert all(s["outcome"] == "succeeded" for s in steps), steps
    order = steps[0]["detail"]["result"]["id"]

    # the ERP order number finds the same timeline, for ops and for the widget itself
    for client in (OPS, WIDGET):
        by_order = trace_until(stack, lambda e: bool(e), client=client, business_key=order)
        assert [e for e in by_order if e["correlationId"] == "audit-close-1"] == entries
    # so does the operation id
    by_operation = trace_until(stack, lambda e: bool(e), business_key=operation["id"])
    assert [e for e in by_operation if e["correlationId"] == "audit-close-1"] == entries
    # someone else's business key finds nothing of it for the portal
    assert trace_until(stack, lambda e: True, client=PORTAL, business_key=order) == []


def test_trace_needs_exactly_one_argument_and_a_scope(stack: UpStack) -> None:
    both = gql(stack, TRACE, OPS, {"cid": "x", "key": "y"})
    assert both["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"
    neither = gql(stack, TRACE, OPS)
    assert neither["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"


AUDIT_LOG = """query Log($id: ID!, $after: String) {
  auditLog(customerId: $id, first: 2, after: $after) {
    nodes { id action subject }
    pageInfo { hasNextPage endCursor }
  }
}"""


def test_audit_log_pages_a_customers_history_newest_first(stack: UpStack) -> None:
    company = next(c for c in generate(CUSTOMERS).companies[1:] if c.in_support)
    for n in range(3):
        read_360(stack, company.bp, f"audit-log-{n}")
    for n in range(3):
        trace_until(stack, lambda e: "SUPPORT" in systems_called(e), cid=f"audit-log-{n}")
    first = gql(stack, AUDIT_LOG, OPS, {"id": f"erp:{company.bp}"})
    assert "errors" not in first, first
    page = first["data"]["auditLog"]
    assert len(page["nodes"]) == 2
    assert page["pageInfo"]["hasNextPage"]
    second = gql(
        stack, AUDIT_LOG, OPS, {"id": f"erp:{company.bp}", "after": page["pageInfo"]["endCursor"]}
    )["data"]["auditLog"]
    nodes = page["nodes"] + second["nodes"]
    ids = [int(n["id"]) for n in nodes]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == len(ids) >= 3
    # each names one of the customer's ids (here: the support organization's calls)
    names = (company.bp, company.crm_id, company.billing_id, str(company.support_id))
    assert all(any(i in n["subject"] for i in names) for n in nodes), nodes
    refused = gql(stack, AUDIT_LOG, WIDGET, {"id": f"erp:{company.bp}"})
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_metrics_count_the_audit_writers_entries(stack: UpStack) -> None:
    read_360(stack, next(c for c in generate(CUSTOMERS).companies if c.in_support).bp, "m-1")
    trace_until(stack, lambda e: bool(calls(e)), cid="m-1")
    text = httpx.get(f"{stack.base}/metrics", headers={"Authorization": f"Bearer {OPS}"}).text
    written = next(
        float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("crosswalk_audit_written_total ")
    )
    assert written >= 4
    assert "crosswalk_audit_dropped_total 0.0" in text
