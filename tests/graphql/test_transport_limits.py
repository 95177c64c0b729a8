"""One admission path for both transports: every bomb is refused over HTTP and over
graphql-transport-ws alike, before anything runs (the runtime's systems fail the test if
reached), and standard introspection passes the limits where a client may introspect."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from graphql import get_introspection_query

from gateway.governance.clients import Client, ClientsPolicy, hash_api_key, load_clients_policy
from gateway.graphql.app import create_graphql_app
from gateway.graphql.persisted import PersistedOperations
from gateway.graphql.schema import get_schema
from tests.graphql.conftest import Runtime
from tests.graphql.transports import Answer, over_http, over_ws
from tests.servers import serve
from tests.support.paths import ROOT

pytestmark = pytest.mark.anyio

Send = Callable[[str, dict[str, Any]], Awaitable[Answer]]

# GraphiQL's standard query (graphql-js getIntrospectionQuery with inputValueDeprecation
# and schemaDescription, as GraphiQL sends it), written out: 7 ofType levels
GRAPHIQL_INTROSPECTION = """
query IntrospectionQuery {
  __schema {
    description
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives {
      name
      description
      isRepeatable
      locations
      args(includeDeprecated: true) { ...InputValue }
    }
  }
}
fragment FullType on __Type {
  kind
  name
  description
  specifiedByURL
  fields(includeDeprecated: true) {
    name
    description
    args(includeDeprecated: true) { ...InputValue }
    type { ...TypeRef }
    isDeprecated
    deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) {
    name
    description
    isDeprecated
    deprecationReason
  }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name
  description
  type { ...TypeRef }
  defaultValue
  isDeprecated
  deprecationReason
}
fragment TypeRef on __Type {
  kind
  name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}
"""

GRAPHQL_CORE_INTROSPECTION = get_introspection_query(
    descriptions=True,
    specified_by_url=True,
    directive_is_repeatable=True,
    schema_description=True,
    input_value_deprecation=True,
)


def _deep(levels: int) -> str:
    inner = "id"
    for _ in range(levels):
        inner = f"edges {{ node {{ {inner} }} }}"
    return f"{{ customers {{ {inner} }} }}"


def _of_type_tower(levels: int) -> str:
    inner = "name"
    for _ in range(levels):
        inner = f"kind ofType {{ {inner} }}"
    return f'{{ __type(name: "Customer") {{ {inner} }} }}'


def _fields_of_fields(levels: int) -> str:
    inner = "name"
    for _ in range(levels):
        inner = f"name fields {{ name type {{ {inner} }} }}"
    return f"{{ __schema {{ types {{ {inner} }} }} }}"


#: (name, key, payload, expected code, expected extensions.limit)
BOMBS: list[tuple[str, str, dict[str, Any], str, str | None]] = [
    ("depth", "demo-portal-key", {"query": _deep(15)}, "QUERY_TOO_COMPLEX", "depth"),
    (
        "aliases",
        "demo-portal-key",
        {"query": "{ " + " ".join(f"a{i}: systems {{ system }}" for i in range(40)) + " }"},
        "QUERY_TOO_COMPLEX",
        "aliases",
    ),
    (
        "cost",
        "demo-portal-key",
        {
            "query": "{ customers(first: 100) { nodes { invoices(first: 100) { nodes { id } } "
            "cases(first: 100) { nodes { id } } } } }"
        },
        "QUERY_TOO_COMPLEX",
        "cost",
    ),
    (
        "tokens",
        "demo-portal-key",
        {"query": "{ " + " ".join("__typename" for _ in range(2100)) + " }"},
        "QUERY_TOO_COMPLEX",
        "tokens",
    ),
    (
        "mutation aliases",
        "demo-ops-key",
        {
            "query": "mutation { "
            + " ".join(f'a{i}: replayDeadLetter(id: "{i}") {{ __typename }}' for i in range(40))
            + " }"
        },
        "QUERY_TOO_COMPLEX",
        "aliases",
    ),
    (
        "introspection not allowed",
        "no-introspection-key",
        {"query": "{ __schema { types { name } } }"},
        "FORBIDDEN",
        None,
    ),
    (
        "standard introspection not allowed",
        "no-introspection-key",
        {"query": GRAPHQL_CORE_INTROSPECTION},
        "FORBIDDEN",
        None,
    ),
    (
        "persisted only",
        "kiosk-key",
        {"query": "{ systems { system } }"},
        "FORBIDDEN",
        None,
    ),
    (
        "ofType tower",
        "demo-ops-key",
        {"query": _of_type_tower(40)},
        "QUERY_TOO_COMPLEX",
        "introspection_of_type",
    ),
    (
        "fields of fields",
        "demo-ops-key",
        {"query": _fields_of_fields(4)},
        "QUERY_TOO_COMPLEX",
        "introspection_lists",
    ),
    (
        "introspection alias fan-out",
        "demo-ops-key",
        {
            "query": "{ "
            + " ".join(f"s{i}: __schema {{ types {{ name }} }}" for i in range(40))
            + " }"
        },
        "QUERY_TOO_COMPLEX",
        "aliases",
    ),
]


def _policy() -> ClientsPolicy:
    shipped = load_clients_policy(ROOT / "policies" / "clients.toml")
    portal = shipped.clients["demo-portal"]
    extra = {
        "no-introspection": dataclasses.replace(portal, id="no-introspection", introspection=False),
        "kiosk": Client(
            id="kiosk", name="Kiosk", scopes=frozenset({"system:read"}), persisted_only=True
        ),
    }
    return dataclasses.replace(
        shipped,
        clients={**shipped.clients, **extra},
        api_keys={
            **shipped.api_keys,
            hash_api_key("no-introspection-key"): "no-introspection",
            hash_api_key("kiosk-key"): "kiosk",
        },
    )


@pytest.fixture
async def base(runtime: Runtime, tmp_path: Path) -> AsyncIterator[str]:
    app = create_graphql_app(
        runtime,
        schema=get_schema(),
        clients=_policy(),
        persisted=PersistedOperations.from_folder(tmp_path),
    )
    async with serve(app) as url:
        yield url


@pytest.mark.parametrize(
    ("name", "key", "payload", "code", "limit"), BOMBS, ids=[b[0] for b in BOMBS]
)
async def test_each_bomb_is_refused_over_both_transports(
    base: str, name: str, key: str, payload: dict[str, Any], code: str, limit: str | None
) -> None:
    http = await over_http(base, key, payload)
    ws = await over_ws(base, key, payload)
    for transport, answer in (("http", http), ("ws", ws)):
        assert answer.codes == [code], (transport, answer)
        assert answer.limit == limit, (transport, answer)
        assert answer.data is None, (transport, answer)
    assert http.status == 200  # application/json: request errors are 200 (the spec's SHOULD)
    assert ws.status == "error"


@pytest.mark.parametrize(
    "query", [GRAPHIQL_INTROSPECTION, GRAPHQL_CORE_INTROSPECTION], ids=["graphiql", "graphql-core"]
)
@pytest.mark.parametrize("key", ["demo-ops-key", "demo-portal-key"])
async def test_standard_introspection_passes_the_limits(base: str, query: str, key: str) -> None:
    for send in (over_http, over_ws):
        answer = await send(base, key, {"query": query})
        assert answer.errors == [], answer.errors[:1]
        types = {t["name"] for t in answer.data["__schema"]["types"]}
        assert {"Operation", "Query", "SubscriptionRoot"} <= types


async def test_a_query_over_ws_answers_like_http(base: str) -> None:
    payload = {"query": "{ systems { system } }"}
    http = await over_http(base, "demo-portal-key", payload)
    ws = await over_ws(base, "demo-portal-key", payload)
    assert http.data == ws.data == {"systems": []}
    assert ws.status == "complete"


async def test_persisted_operation_over_ws(base: str) -> None:
    import hashlib

    query = "{ systems { system } }"
    digest = hashlib.sha256(query.encode()).hexdigest()
    ext = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    missing = await over_ws(base, "demo-portal-key", {"extensions": ext})
    assert missing.codes == ["PERSISTED_QUERY_NOT_FOUND"]
    registered = await over_ws(base, "demo-portal-key", {"query": query, "extensions": ext})
    assert registered.data == {"systems": []}
    by_hash = await over_ws(base, "demo-portal-key", {"extensions": ext})
    assert by_hash.data == {"systems": []}


class _RecordingActor:
    """An actor that records each ask's deadline (as seconds left) and is unavailable."""

    def __init__(self, left: list[float]) -> None:
        self.left = left

    async def ask(self, message: Any, *, priority: Any, deadline: float) -> Any:
        from actors.errors import SystemUnavailable
        from gateway.graphql.context import current_time

        self.left.append(deadline - current_time())
        raise SystemUnavailable("erp", "down for the test")

    def last_known_good(self, message: Any) -> None:
        return None


class _RecordingSystems:
    def __init__(self) -> None:
        self.left: list[float] = []

    def __getitem__(self, system: Any) -> _RecordingActor:
        return _RecordingActor(self.left)

    def states(self) -> list[Any]:
        return []


async def test_ws_operations_get_the_http_deadline(runtime: Runtime) -> None:
    systems = _RecordingSystems()
    recorded = dataclasses.replace(runtime, systems=systems)
    app = create_graphql_app(recorded, schema=get_schema(), deadline_seconds=2.0)
    query = {"query": '{ customer(id: "erp:1000000") { name } }'}
    async with serve(app) as url:
        http = await over_http(url, "demo-portal-key", query)
        http_asks = len(systems.left)
        ws = await over_ws(url, "demo-portal-key", query)
    assert http.errors
    assert ws.errors
    assert 0 < http_asks < len(systems.left)
    # every upstream ask, over either transport, carries the request's 2 s deadline
    assert all(0 < left <= 2.0 for left in systems.left), systems.left
