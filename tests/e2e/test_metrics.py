"""/metrics after real traffic on `crosswalk up`: every family is there, no id is a label."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.paths import ROOT
from tests.support.upstack import running_up

pytestmark = [pytest.mark.slow]

OPS = {"Authorization": "Bearer demo-ops-key"}
WIDGET = {"Authorization": "Bearer demo-widget-key"}

FAMILIES = {
    # GraphQL at the edge
    "crosswalk_graphql_requests",
    "crosswalk_graphql_request_seconds",
    # the system actors
    "crosswalk_upstream_calls",
    "crosswalk_upstream_failures",
    "crosswalk_upstream_retries",
    "crosswalk_upstream_latency_seconds",
    "crosswalk_coalesced_asks",
    "crosswalk_expired_messages",
    "crosswalk_shed_messages",
    "crosswalk_mailbox_depth",
    "crosswalk_in_flight",
    "crosswalk_breaker_state",
    "crosswalk_breaker_transitions",
    "crosswalk_throttle_waits",
    "crosswalk_throttle_wait_seconds",
    # the outbox
    "crosswalk_outbox_messages",
    "crosswalk_outbox_dead_letters",
    "crosswalk_outbox_oldest_open_age_seconds",
    # webhooks in
    "crosswalk_webhooks",
    # the read model and the quota split
    "crosswalk_read_model_lag_seconds",
    "crosswalk_read_model_records",
    "crosswalk_read_model_events_applied",
    "crosswalk_read_model_feed_failing",
    "crosswalk_quota_calls",
    # reconciliation and the SLOs
    "crosswalk_reconciliation_findings",
    "crosswalk_slo_ok",
    "crosswalk_slo_burn_rate",
}


def test_every_family_after_traffic(tmp_path: Path) -> None:
    with running_up(tmp_path) as stack:
        gql = f"{stack.base}/graphql"
        named = {"query": 'query Customer360 { customer(id: "erp:1000000") { name } }'}
        assert httpx.post(gql, json=named, headers=WIDGET).status_code == 200
        bad = httpx.post(gql, json={"query": "{ nope }"}, headers=WIDGET)
        assert "errors" in bad.json()
        onboard = """mutation Onboard { onboardCustomer(input: {name: "Metric Works GmbH",
          taxId: "DE300000025", country: "DE", paymentTerms: "NT30"}) { id } }"""
        assert "errors" not in httpx.post(gql, json={"query": onboard}, headers=WIDGET).json()
        unsigned = httpx.post(f"{stack.base}/webhooks/billing", content=b"{}")
        assert unsigned.status_code >= 400

        scrape = httpx.get(f"{stack.base}/metrics", headers=OPS)
        assert scrape.status_code == 200
        families = {f.name: f for f in text_string_to_metric_families(scrape.text)}
        missing = FAMILIES - set(families)
        assert not missing, missing

        requests = families["crosswalk_graphql_requests"].samples
        labels = {(s.labels["operation"], s.labels["type"], s.labels["outcome"]) for s in requests}
        assert ("Customer360", "query", "ok") in labels
        assert ("Onboard", "mutation", "ok") in labels
        assert any(outcome == "rejected" for _, _, outcome in labels)
        hooks = {
            (s.labels["system"], s.labels["result"]): s.value
            for s in families["crosswalk_webhooks"].samples
            if s.name.endswith("_total")
        }
        assert hooks[("billing", "rejected")] >= 1
        outbox = families["crosswalk_outbox_messages"].samples
        assert {s.labels["system"] for s in outbox} >= {"erp"}
        assert_deploy_files_name_real_families(set(families))
        # bounded cardinality: no label value looks like an id
        for family in families.values():
            for sample in family.samples:
                for value in sample.labels.values():
                    assert not value.startswith(("op_", "cw_", "cus_", "sub_", "001")), sample


def _names(expression: str) -> set[str]:
    """The metric families a PromQL expression reads (sample suffixes stripped)."""
    names = set(re.findall(r"\bcrosswalk_[a-z_]+", expression))
    return {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in names}


def assert_deploy_files_name_real_families(exported: set[str]) -> None:
    """Every expression in deploy/ (Grafana dashboard, Prometheus alerts) reads only
    families the gateway exports, so neither ships a panel or alert that never fires."""
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus-alerts.yml").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    assert all({"alert", "expr", "labels", "annotations"} <= set(r) for r in alerts)
    expressions += [r["expr"] for r in alerts]
    assert len(expressions) >= 15
    for expression in expressions:
        used = _names(expression)
        assert used, expression
        assert used <= exported, (expression, used - exported)
