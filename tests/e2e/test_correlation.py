"""The correlation id and the W3C trace reach every vendor call, reads and outbox writes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from actors.context import trace_id_for
from tests.support.upstack import UpStack, running_up, wait_linked

pytestmark = [pytest.mark.slow]

WIDGET = {"Authorization": "Bearer demo-widget-key"}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    with running_up(tmp_path_factory.mktemp("correlation")) as up:
        yield up


def seen(stack: UpStack, system: str, correlation_id: str) -> list[dict[str, str | None]]:
    stats = httpx.get(f"http://127.0.0.1:{stack.ports[system]}/_sandbox/stats").json()
    return [c for c in stats["recent"] if c["correlation_id"] == correlation_id]


def test_a_read_carries_the_callers_correlation_and_trace(stack: UpStack) -> None:
    wait_linked(stack, "erp:1000000", ("billing",))
    answer = httpx.post(
        f"{stack.base}/graphql",
        json={
            # maxAge 0: asked of the systems now, whatever the read model already holds
            "query": '{ customer(id: "erp:1000000", maxAge: 0) '
            "{ name invoices(first: 1) { nodes { id } } } }"
        },
        headers={
            **WIDGET,
            "X-Correlation-ID": "read-360-1",
            "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01",
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Correlation-ID"] == "read-360-1"
    for system in ("erp", "billing"):
        calls = seen(stack, system, "read-360-1")
        assert calls, system
        for call in calls:
            version, trace, span, flags = (call["traceparent"] or "").split("-")
            assert (version, trace, flags) == ("00", TRACE, "01")
            assert span != "00f067aa0ba902b7"  # each vendor call is a span of its own


def test_outbox_deliveries_carry_the_mutations_correlation(stack: UpStack) -> None:
    mutation = """mutation { onboardCustomer(input: {name: "Correlate Freight GmbH",
      taxId: "DE300000017", country: "DE", paymentTerms: "NT30"}) { id } }"""
    answer = httpx.post(
        f"{stack.base}/graphql",
        json={"query": mutation},
        headers={**WIDGET, "X-Correlation-ID": "onboard-corr-1"},
    )
    assert answer.status_code == 200, answer.text
    assert "errors" not in answer.json(), answer.text
    deadline = time.monotonic() + 30  # a hang guard: the four steps run in the background
    while not seen(stack, "support", "onboard-corr-1"):
        assert time.monotonic() < deadline, "the onboarding never reached support"
        time.sleep(0.1)
    expected_trace = trace_id_for("onboard-corr-1")
    for system in ("erp", "crm", "billing", "support"):
        writes = [
            c for c in seen(stack, system, "onboard-corr-1") if not c["route"].startswith("GET")
        ]
        assert writes, system
        assert all((c["traceparent"] or "").split("-")[1] == expected_trace for c in writes)
