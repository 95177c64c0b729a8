"""GraphiQL on `crosswalk up` works with no network: editor, demo tabs, docs from the schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.browser import Browser, needs_chromium
from tests.support.upstack import UpStack, running_up

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    with running_up(tmp_path_factory.mktemp("graphiql")) as up:
        yield up


def test_page_and_assets_come_from_the_gateway(stack: UpStack) -> None:
    page = httpx.get(f"{stack.base}/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    html = page.text
    assert "unpkg" not in html
    assert "https://" not in html
    assert "demo-portal-key" in html  # the sandbox world's demo key, prefilled
    for asset in (
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
        "crosswalk-graphiql.js",
    ):
        answer = httpx.get(f"{stack.base}/graphql/assets/{asset}")
        assert answer.status_code == 200, asset
        assert len(answer.content) > 500
    assert httpx.get(f"{stack.base}/graphql/assets/..%2Fapp.py").status_code == 404
    assert httpx.get(f"{stack.base}/graphql/assets/README.md").status_code == 404


@needs_chromium
def test_graphiql_renders_and_reads_the_schema_with_no_network(
    stack: UpStack, tmp_path: Path
) -> None:
    with Browser() as browser:
        browser.navigate(f"{stack.base}/graphql")
        browser.wait_for("document.querySelector('.graphiql-query-editor .CodeMirror') !== null")
        # the README's examples are the tabs, the customer 360 first
        tabs = browser.evaluate(
            "Array.from(document.querySelectorAll('.graphiql-tab')).map(t => t.textContent)"
        )
        assert len(tabs) == 3, tabs
        assert "Customer360" in tabs[0]
        editor = browser.evaluate(
            "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.getValue()"
        )
        assert 'customer(id: "erp:1000000")' in editor
        # the docs explorer lists the schema's root types: the standard introspection
        # query passed the limits for the demo portal key
        browser.wait_for(
            "(() => { const b = document.querySelector("
            "'[aria-label=\"Show Documentation Explorer\"]'); if (b) b.click(); return !!b; })()"
        )
        docs = browser.wait_for(
            "(() => { const d = document.querySelector('.graphiql-doc-explorer');"
            " return d && d.textContent.includes('Query') ? d.textContent : null; })()"
        )
        assert "Mutation" in docs
        assert "Subscription" in docs
        # run the customer 360: the answer shows in the result pane
        browser.evaluate("document.querySelector('.graphiql-execute-button').click()")
        result = browser.wait_for(
            "(() => { const r = document.querySelector('.graphiql-response .CodeMirror');"
            " const v = r && r.CodeMirror.getValue(); return v && v.includes('legalName')"
            " ? v : null; })()"
        )
        assert '"errors"' not in result, result
    gateway = urlsplit(stack.base).netloc
    outside = [u for u in browser.requests if urlsplit(u).netloc not in (gateway, "")]
    assert outside == [], outside
