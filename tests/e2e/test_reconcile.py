"""`crosswalk reconcile` against `crosswalk up`: exactly the planted drift, drift planted
at run time through the vendors' APIs, and a repair that leaves only what a person must
decide."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.paths import ROOT
from tests.support.upstack import SYSTEMS, UpStack, running_up

pytestmark = [pytest.mark.slow]

SF = {"Authorization": "Bearer 00DSANDBOX!crosswalk"}
STRIPE = {"Authorization": "Bearer sk_test_crosswalk"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    with running_up(tmp_path_factory.mktemp("reconcile"), customers=60) as up:
        yield up


def reconcile(stack: UpStack, *flags: str) -> tuple[int, dict[str, Any] | str]:
    env = {
        **os.environ,
        **{f"CROSSWALK_{s.upper()}_URL": f"http://127.0.0.1:{stack.ports[s]}" for s in SYSTEMS},
    }
    done = subprocess.run(
        [sys.executable, "-m", "crosswalk", "reconcile", "--var-dir", str(stack.var_dir), *flags],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    out: dict[str, Any] | str = json.loads(done.stdout) if "--json" in flags else done.stdout
    return done.returncode, out


def planted(stack: UpStack) -> list[dict[str, Any]]:
    manifest = json.loads((stack.var_dir / "sandbox" / "drift-manifest.json").read_text())
    drift: list[dict[str, Any]] = manifest["drift"]
    return drift


def key(finding: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(finding[k] for k in ("kind", "erp_bp", "system", "record_id", "field"))


def test_reconcile_finds_the_planted_drift_and_nothing_else(stack: UpStack) -> None:
    status, report = reconcile(stack, "--json")
    assert isinstance(report, dict)
    assert status == 1
    assert sorted(map(key, report["findings"])) == sorted(map(key, planted(stack)))
    expected = {key(d): d for d in planted(stack)}
    for finding in report["findings"]:
        assert finding == expected[key(finding)]
    # the run is kept: Query.reconciliation pages its findings
    answer = httpx.post(
        f"{stack.base}/graphql",
        json={"query": "{ reconciliation { trigger customers findingsCount incomplete "
                       "findings(first: 100) { totalCount nodes { kind erpBp system recordId "
                       "field expected actual repair } } } }"},
        headers={"Authorization": "Bearer demo-ops-key"},
    ).json()  # fmt: skip
    [run] = answer["data"]["reconciliation"]
    assert (run["trigger"], run["customers"], run["incomplete"]) == ("cli", 60, [])
    assert run["findingsCount"] == len(planted(stack))
    shown = [
        {k: n[c] for k, c in (("kind", "kind"), ("erp_bp", "erpBp"), ("system", "system"),
                              ("record_id", "recordId"), ("field", "field"),
                              ("expected", "expected"), ("actual", "actual"))}
        for n in run["findings"]["nodes"]
    ]  # fmt: skip
    assert sorted(map(key, shown)) == sorted(map(key, planted(stack)))


def test_drift_made_through_the_vendors_apis_is_found_then_repaired(stack: UpStack) -> None:
    crm = f"http://127.0.0.1:{stack.ports['crm']}/services/data/v60.0"
    accounts = httpx.get(
        f"{crm}/query",
        params={"q": "SELECT Id, ERP_Customer_Id__c, Payment_Terms__c FROM Account "
                     "WHERE ERP_Customer_Id__c != null ORDER BY Id LIMIT 60"},
        headers=SF,
    ).json()["records"]  # fmt: skip
    drifted = {d["erp_bp"] for d in planted(stack)}
    account = next(a for a in accounts if a["ERP_Customer_Id__c"] not in drifted)
    terms = "NT45" if account["Payment_Terms__c"] != "NT45" else "NT30"
    changed = httpx.patch(
        f"{crm}/sobjects/Account/{account['Id']}", json={"Payment_Terms__c": terms}, headers=SF
    )
    assert changed.status_code == 204, changed.text
    orphan = httpx.post(
        f"http://127.0.0.1:{stack.ports['billing']}/v1/customers",
        data={"name": "Nobody Knows Ltd", "metadata[erp_bp]": "1999999"},
        headers=STRIPE,
    ).json()
    _, report = reconcile(stack, "--json")
    assert isinstance(report, dict)
    found = {key(f) for f in report["findings"]}
    assert ("payment_terms_mismatch", account["ERP_Customer_Id__c"], "crm", account["Id"],
            "payment_terms") in found  # fmt: skip
    assert ("orphan_billing", "1999999", "billing", orphan["id"], None) in found

    status, text = reconcile(stack, "--repair")
    assert status == 1
    assert "repair(s) written to the outbox" in str(text)
    deadline = time.monotonic() + 60  # the running gateway's dispatcher delivers them
    while True:
        status, report = reconcile(stack, "--json")
        assert isinstance(report, dict)
        left = {f["kind"] for f in report["findings"]}
        if left <= {"orphan_billing"}:
            break
        assert time.monotonic() < deadline, report
        time.sleep(0.5)
    assert status == 1  # the orphans stay: a person decides
    assert {f["record_id"] for f in report["findings"]} >= {orphan["id"]}
    fixed = httpx.get(f"{crm}/sobjects/Account/{account['Id']}", headers=SF).json()
    assert fixed["Payment_Terms__c"] == account["Payment_Terms__c"]
