"""GraphiQL, served from the package: the page and its assets, no outside host needed.

``graphiql_page(clients)`` renders ``static/graphiql.html`` with the README's example
operations as tabs and, when the demo portal key is accepted by the loaded clients
policy (the sandbox world), that key in the headers editor, so a first visit runs a
customer 360 with one click. The key lives only in the tab's memory (the page sets
``shouldPersistHeaders: false``). ``asset_response(name)`` serves the vendored files
listed in ``static/README.md``; anything else is 404.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import orjson
from starlette.responses import Response

from gateway.governance.clients import ClientsPolicy

__all__ = ["ASSETS", "DEMO_PORTAL_KEY", "asset_response", "graphiql_page"]

#: the demo portal client's key (README); prefilled only where the policy accepts it
DEMO_PORTAL_KEY = "demo-portal-key"

#: file name -> media type; the only files ``/graphql/assets/`` serves
ASSETS: dict[str, str] = {
    "graphiql.min.css": "text/css; charset=utf-8",
    "graphiql.min.js": "text/javascript; charset=utf-8",
    "react.production.min.js": "text/javascript; charset=utf-8",
    "react-dom.production.min.js": "text/javascript; charset=utf-8",
    "crosswalk-graphiql.js": "text/javascript; charset=utf-8",
}

_CUSTOMER_360 = """# A customer 360: every system's fields, read in parallel.
# customer(id:) takes the canonical id or erp:/billing:/crm:/support: ids.
query Customer360 {
  customer(id: "erp:1000000") {
    id
    name
    identity { erp billing crm support }
    golden { legalName taxId country paymentTerms creditStatus segment industry owner }
    invoices(first: 5) { nodes { id status total currency posted } stale ageSeconds }
    subscriptions(status: ["active", "past_due"]) { nodes { id status currentPeriodEnd } }
    opportunities(first: 5) { nodes { id name stage amount } }
    cases(first: 5) { nodes { id subject priority status } }
    entitlements { nodes { status supportTier ends } }
    freshness { system stale asOf reason }
  }
}
"""

_ONBOARD = """# Needs a key with write scopes: put "Bearer demo-widget-key" in the headers.
mutation Onboard {
  onboardCustomer(
    input: {name: "Acme Rockets GmbH", taxId: "DE123456789", country: "DE",
            paymentTerms: "NT30", email: "ap@acme.example.com"}
    idempotencyKey: "onboard-acme-1"
  ) { id status correlationId steps { name status } }
}
"""

_SYSTEMS = """# How each system is doing: health, breaker, queue depth, latency.
query Systems {
  systems { system healthy healthDetail breaker queueDepth p50LatencyMs }
}
"""

_TABS = (
    {"query": _CUSTOMER_360},
    {"query": _ONBOARD, "headers": '{"Authorization": "Bearer demo-widget-key"}'},
    {"query": _SYSTEMS},
)


@cache
def _read(name: str) -> bytes:
    return resources.files("gateway.graphql").joinpath("static", name).read_bytes()


def graphiql_page(clients: ClientsPolicy) -> bytes:
    """The GraphiQL page for this gateway's clients policy."""
    demo = clients.client_for_api_key(DEMO_PORTAL_KEY) is not None
    headers = {"Authorization": f"Bearer {DEMO_PORTAL_KEY}"} if demo else {}
    tabs = [
        {**tab, "headers": tab.get("headers") or orjson.dumps(headers).decode()}
        if demo
        else {"query": tab["query"]}
        for tab in _TABS
    ]
    config = orjson.dumps({"tabs": tabs, "headers": orjson.dumps(headers).decode()})
    # a JSON island inside <script>: "</" must not close the element early
    island = config.replace(b"</", b"<\\/")
    return _read("graphiql.html").replace(b"__CONFIG__", island)


def asset_response(name: str) -> Response:
    """One vendored asset, cacheable for a day; 404 for any name not listed."""
    media_type = ASSETS.get(name)
    if media_type is None:
        return Response("Not found.", status_code=404, media_type="text/plain")
    return Response(
        _read(name),
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=86400"},
    )
