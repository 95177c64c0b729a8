"""Structured logs: JSON lines, correlation id on each, no secret ever written."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from actors.context import CallContext, reset_call, set_call
from gateway.observability.logs import JsonFormatter, redact
from tests.support.upstack import running_up

#: every secret the demo world knows, as a log line might carry it
SECRETS = [
    "demo-portal-key",
    "demo-widget-key",
    "demo-ops-key",
    "sk_test_crosswalk",
    "whsec_crosswalk_sandbox",
    "00DSANDBOX!crosswalk",
    "4242 4242 4242 4242",
    "4000000000000002",
]


@pytest.mark.parametrize(
    "line",
    [
        "calling with Authorization: Bearer demo-widget-key",
        "Basic YWdlbnRAZXhhbXBsZS5jb20vdG9rZW46c2FuZGJveA==",
        "api_key=sk_test_crosswalk retrying",
        '{"password": "sandbox", "client_secret": "s3cr3t"}',
        "Stripe-Signature: t=1700000000,v1=abcdef0123456789",
        "session 00DSANDBOX!crosswalk expired",
        "secret whsec_crosswalk_sandbox rotated",
        "card 4242 4242 4242 4242 declined",
    ],
)
def test_redaction(line: str) -> None:
    out = redact(line)
    assert "[REDACTED]" in out
    for word in ("demo-widget-key", "sk_test_", 'sandbox"', "s3cr3t", "abcdef0123", "whsec_"):
        assert word not in out, out
    assert "4242 4242" not in out
    assert "YWdlbn" not in out


def test_a_record_is_one_json_line_with_its_correlation() -> None:
    token = set_call(CallContext("corr-42"))
    try:
        record = logging.LogRecord(
            "gateway.test", logging.WARNING, __file__, 1, "key %s", ("demo-ops-key",), None
        )
        line = JsonFormatter().format(record)
    finally:
        reset_call(token)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["level"] == "warning"
    assert entry["logger"] == "gateway.test"
    assert entry["correlation_id"] == "corr-42"
    assert "demo-ops-key" not in entry["message"]


@pytest.mark.slow
def test_the_demo_flows_write_no_secret_to_any_log_line(tmp_path: Path) -> None:
    widget = {"Authorization": "Bearer demo-widget-key"}
    with running_up(tmp_path) as stack:
        gql = f"{stack.base}/graphql"
        httpx.post(gql, json={"query": '{ customer(id: "erp:1000000") { name } }'}, headers=widget)
        onboard = """mutation { onboardCustomer(input: {name: "Logwise Freight GmbH",
          taxId: "DE300000033", country: "DE", paymentTerms: "NT30"}) { id } }"""
        httpx.post(gql, json={"query": onboard}, headers=widget)
        httpx.post(
            gql, json={"query": "{ systems { system } }"}, headers={"Authorization": "Bearer nope"}
        )
        httpx.post(f"{stack.base}/webhooks/billing", content=b'{"id": "evt_1"}',
                   headers={"Stripe-Signature": "t=1,v1=deadbeef"})  # fmt: skip
        # an outage makes the gateway log its failures with their causes
        httpx.put(
            f"http://127.0.0.1:{stack.ports['billing']}/_sandbox/chaos", json={"outage": True}
        )
        httpx.post(
            gql,
            json={"query": '{ customer(id: "erp:1000001") { name invoices { nodes { id } } } }'},
            headers=widget,
        )
        httpx.put(
            f"http://127.0.0.1:{stack.ports['billing']}/_sandbox/chaos", json={"outage": False}
        )
    lines = [line for line in stack.log.read_text().splitlines() if line.startswith("{")]
    assert lines, "no log line was written"
    for line in lines:
        entry = json.loads(line)  # every log line is one JSON object
        assert {"ts", "level", "logger", "message"} <= set(entry)
        for secret in SECRETS:
            assert secret not in line, line
