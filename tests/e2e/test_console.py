"""The operations console on `crosswalk up`, in a browser with no network: sign in, the
system tiles, chaos through the console, a dead letter replayed from it, /slo."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.browser import Browser, needs_chromium
from tests.ops import OPS_HEADERS
from tests.support.paths import ROOT
from tests.support.upstack import UpStack, running_up

pytestmark = [pytest.mark.slow]

PORTAL = {"Authorization": "Bearer demo-portal-key"}
WIDGET = {"Authorization": "Bearer demo-widget-key"}
GUARD = 60.0  # a hang guard, not a timing check


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    folder = tmp_path_factory.mktemp("console")
    policies = folder / "policies"
    shutil.copytree(ROOT / "policies", policies)
    # one failed delivery makes a dead letter, so the test need not wait out the backoff
    outbox = policies / "outbox.toml"
    outbox.write_text(outbox.read_text().replace("max_attempts = 8", "max_attempts = 1"))
    # and support's breaker stays closed through its failures (an open one defers the
    # delivery instead of spending its attempt)
    systems = policies / "systems.toml"
    head, support = systems.read_text().split("[systems.support]")
    systems.write_text(
        f"{head}[systems.support]{support.replace('fail_max = 5', 'fail_max = 1000')}"
    )
    with running_up(folder, env={"CROSSWALK_POLICIES": str(policies)}) as up:
        yield up


def _chaos(stack: UpStack, system: str, **patch: object) -> None:
    url = f"http://127.0.0.1:{stack.ports[system]}/_sandbox/chaos"
    httpx.post(url, json=patch).raise_for_status()


def test_files_config_and_slo_come_from_the_gateway(stack: UpStack) -> None:
    page = httpx.get(f"{stack.base}/console")
    assert page.status_code == 200
    assert "https://" not in page.text
    for asset in ("console.js", "console.css"):
        assert httpx.get(f"{stack.base}/console/{asset}").status_code == 200
    assert httpx.get(f"{stack.base}/console/README.md").status_code == 404
    config = httpx.get(f"{stack.base}/console/config.json").json()
    assert set(config["sandbox"]) == {"erp", "billing", "crm", "support"}
    chaos = f"{stack.base}/console/chaos/erp"
    assert httpx.post(chaos, json={}).status_code == 401
    assert httpx.post(chaos, json={}, headers=PORTAL).status_code == 403
    assert httpx.get(f"{stack.base}/slo").status_code == 401
    assert httpx.get(f"{stack.base}/slo", headers=PORTAL).status_code == 403
    slo = httpx.get(f"{stack.base}/slo", headers=OPS_HEADERS).json()
    objectives = {(o["name"], o["objective"]) for o in slo["objectives"]}
    assert ("billing", "availability") in objectives
    assert ("onboardCustomer", "success_rate") in objectives
    assert set(slo["windows"]) == {"5m", "1h"}


def _tile(browser: Browser, system: str, attribute: str) -> str:
    return str(
        browser.evaluate(
            f"(document.querySelector('.tile[data-system=\"{system}\"]') || {{dataset: {{}}}})"
            f".dataset.{attribute}"
        )
    )


@needs_chromium
def test_console_signs_in_shows_tiles_runs_chaos_and_replays(
    stack: UpStack, tmp_path: Path
) -> None:
    with Browser() as browser:
        browser.navigate(f"{stack.base}/console")
        browser.wait_for("document.body && document.body.dataset.loaded === 'true'")
        browser.evaluate(
            "document.querySelector('#key').value = 'demo-ops-key';"
            "document.querySelector('#sign-in').requestSubmit(); true"
        )
        browser.wait_for("document.body.dataset.ready === 'true'", timeout=GUARD)
        assert browser.evaluate("sessionStorage.getItem('crosswalk.console.key')") == (
            "demo-ops-key"
        )
        # four healthy tiles (the first health pings may still be on their way)
        browser.wait_for(
            "document.querySelectorAll('.tile[data-healthy=\"true\"]').length === 4",
            timeout=GUARD,
        )
        assert browser.evaluate("document.querySelectorAll('.panel.refused').length") == 0
        # each tile shows the system's quota use against its policy rate
        quota = browser.evaluate(
            "document.querySelector('.tile[data-system=\"support\"] .quota').textContent"
        )
        assert "/ 700 a min" in quota

        # billing down through the chaos panel; reads that need billing open its breaker
        browser.evaluate(
            "document.querySelector('#chaos [data-system=\"billing\"] .outage-on').click(); true"
        )
        browser.wait_for(
            "document.querySelector('#chaos [data-system=\"billing\"] .state')"
            ".textContent === 'outage'"
        )
        read = '{ customer(id: "erp:1000000", maxAge: 0) { invoices(first: 1) { stale } } }'
        deadline = time.monotonic() + GUARD
        while _tile(browser, "billing", "breaker") != "open":
            assert time.monotonic() < deadline, _tile(browser, "billing", "breaker")
            httpx.post(f"{stack.base}/graphql", json={"query": read}, headers=PORTAL)
            time.sleep(0.3)
        assert _tile(browser, "erp", "breaker") == "closed"
        browser.evaluate(
            "document.querySelector('#chaos [data-system=\"billing\"] .outage-off').click(); true"
        )
        browser.wait_for(
            "document.querySelector('#chaos [data-system=\"billing\"] .state')"
            ".textContent === 'up'"
        )
        assert (
            httpx.get(f"http://127.0.0.1:{stack.ports['billing']}/_sandbox/chaos").json()["outage"]
            is False
        )

        # a dead letter: support fails every call, so the onboarding's support step fails
        _chaos(stack, "support", error_rate=1.0)
        mutation = """mutation { onboardCustomer(input: {name: "Console Replay GmbH",
          taxId: "DE300000025", country: "DE", paymentTerms: "NT30"}) { id } }"""
        answer = httpx.post(f"{stack.base}/graphql", json={"query": mutation}, headers=WIDGET)
        assert "errors" not in answer.json(), answer.text
        operation = answer.json()["data"]["onboardCustomer"]["id"]
        browser.wait_for(
            "document.querySelectorAll('#dead-letters .list li').length === 1", timeout=GUARD
        )
        # the backlog shows the dead letter on support's row
        browser.wait_for(
            "(() => { const r = document.querySelector('#outbox tr[data-system=support]');"
            " return r !== null && r.children[3].textContent === '1'; })()",
            timeout=GUARD,
        )
        # the customer 360 of the onboarded customer, following its events live
        about = httpx.post(
            f"{stack.base}/graphql",
            json={
                "query": "query($id: ID!) { operation(id: $id) { customerId correlationId } }",
                "variables": {"id": operation},
            },
            headers=OPS_HEADERS,
        ).json()["data"]["operation"]
        _chaos(stack, "support", error_rate=0.0)
        browser.evaluate("document.querySelector('#dead-letters .replay').click(); true")
        browser.wait_for(
            "document.querySelectorAll('#dead-letters .list li').length === 0", timeout=GUARD
        )
        status = "query($id: ID!) { operation(id: $id) { status } }"
        deadline = time.monotonic() + GUARD
        while True:
            body = httpx.post(
                f"{stack.base}/graphql",
                json={"query": status, "variables": {"id": operation}},
                headers=OPS_HEADERS,
            ).json()
            if body["data"]["operation"]["status"] == "SUCCEEDED":
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
        # the customer 360 follows the customer's changes live: a case opened for it
        # reaches the page through the support webhook and the read model
        browser.evaluate(
            "{ const f = document.querySelector('#customer form');"
            f"f.id.value = {about['customerId']!r}; f.requestSubmit(); }} true"
        )
        browser.wait_for(
            "document.querySelectorAll('#customer .badge').length === 4", timeout=GUARD
        )
        assert about["customerId"] in browser.evaluate(
            "document.querySelector('#customer .summary').textContent"
        )
        browser.wait_for(
            f"document.querySelector('#customer').dataset.following === {about['customerId']!r}"
        )
        case = """mutation($id: ID!) { openCase(input: {customerId: $id,
          subject: "Console live event", description: "from the console test"}) { id } }"""
        opened = httpx.post(
            f"{stack.base}/graphql",
            json={"query": case, "variables": {"id": about["customerId"]}},
            headers=WIDGET,
        )
        assert "errors" not in opened.json(), opened.text
        event = browser.wait_for(
            "document.querySelector('#customer .events li')?.textContent", timeout=GUARD
        )
        assert "support." in event, event
        # the onboarding's trace, drawn as lanes per system
        browser.evaluate(
            "{ const t = document.querySelector('#trace form');"
            f"t.value.value = {about['correlationId']!r}; t.requestSubmit(); }} true"
        )
        lanes = browser.wait_for(
            "(() => { const l = [...document.querySelectorAll('#trace .lane')]"
            ".map(e => e.dataset.lane); return l.length > 1 ? l : null; })()",
            timeout=GUARD,
        )
        assert {"ERP", "SUPPORT"} <= set(lanes), lanes
    gateway = urlsplit(stack.base).netloc
    outside = [u for u in browser.requests if urlsplit(u).netloc not in (gateway, "")]
    assert outside == [], outside


@needs_chromium
def test_a_reader_key_sees_refused_panels_say_why(stack: UpStack) -> None:
    with Browser() as browser:
        browser.navigate(f"{stack.base}/console")
        browser.wait_for("document.body && document.body.dataset.loaded === 'true'")
        browser.evaluate(
            "document.querySelector('#key').value = 'demo-portal-key';"
            "document.querySelector('#sign-in').requestSubmit(); true"
        )
        browser.wait_for("document.body.dataset.ready === 'true'", timeout=GUARD)
        browser.wait_for("document.querySelectorAll('.tile').length === 4")
        refused = browser.wait_for(
            "(() => { const p = document.querySelector('#dead-letters');"
            " return p.classList.contains('refused') ? p.querySelector('.why').textContent"
            " : null; })()"
        )
        assert "deadletter:replay" in refused
        assert browser.evaluate("document.querySelector('#slo').classList.contains('refused')")
        assert browser.wait_for("document.querySelector('#outbox').classList.contains('refused')")
