"""Limits answer QUERY_TOO_COMPLEX before anything runs; persisted operations by hash."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import httpx
import pytest

from gateway.governance.clients import Client, ClientsPolicy, QueryLimits, hash_api_key
from gateway.graphql.app import create_graphql_app
from gateway.graphql.persisted import PersistedOperations
from tests.graphql.conftest import PORTAL, Runtime, read_schema

pytestmark = pytest.mark.anyio

GQL = "application/graphql-response+json"


async def _post(client: httpx.AsyncClient, query: str, **extra: object) -> httpx.Response:
    return await client.post(
        "/graphql", json={"query": query, **extra}, headers={**PORTAL, "Accept": GQL}
    )


def _code(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


async def test_deep_query_is_refused(client: httpx.AsyncClient) -> None:
    # the NoSystems runtime fails the test if anything reaches an actor
    inner = "id"
    for _ in range(15):
        inner = f"edges {{ node {{ {inner} }} }}"
    response = await _post(client, f"{{ customers {{ {inner} }} }}")
    assert response.status_code == 400
    assert _code(response) == "QUERY_TOO_COMPLEX"
    assert response.json()["errors"][0]["extensions"]["limit"] == "depth"


async def test_alias_bomb_is_refused(client: httpx.AsyncClient) -> None:
    aliases = " ".join(f"a{i}: systems {{ system }}" for i in range(40))
    response = await _post(client, f"{{ {aliases} }}")
    assert _code(response) == "QUERY_TOO_COMPLEX"
    assert response.json()["errors"][0]["extensions"]["limit"] == "aliases"


async def test_fragment_bomb_is_refused_without_blowing_up(client: httpx.AsyncClient) -> None:
    # each fragment doubles the previous one: 2**20 fields if expanded naively
    fragments = ["fragment F0 on SystemStatus { system breaker }"]
    for i in range(1, 21):
        fragments.append(f"fragment F{i} on SystemStatus {{ ...F{i - 1} ...F{i - 1} }}")
    query = "{ systems { ...F20 } } " + " ".join(fragments)
    started = time.perf_counter()
    response = await _post(client, query)
    # fragments are expanded once each (analysis, validation and execution all memoize),
    # so the bomb costs what its text costs: a plain answer, quickly
    assert time.perf_counter() - started < 1.0
    assert response.json() == {"data": {"systems": []}}
    # the same shape through aliases is refused by the alias limit
    aliased = "{ systems { " + " ".join(f"a{i}: system" for i in range(64)) + " } }"
    assert _code(await _post(client, aliased)) == "QUERY_TOO_COMPLEX"


async def test_cost_multiplies_by_first(client: httpx.AsyncClient) -> None:
    query = """{ customers(first: 100) { nodes {
        invoices(first: 100) { nodes { id } } cases(first: 100) { nodes { id } } } } }"""
    response = await _post(client, query)
    assert _code(response) == "QUERY_TOO_COMPLEX"
    assert response.json()["errors"][0]["extensions"]["limit"] == "cost"
    small = "{ customers(first: 5) { nodes { invoices(first: 5) { nodes { id } } } } }"
    assert (await _post(client, small)).status_code == 200


async def test_cost_reads_first_from_variables(client: httpx.AsyncClient) -> None:
    query = """query($n: Int!) { customers(first: $n) { nodes {
        invoices(first: $n) { nodes { id } } cases(first: $n) { nodes { id } } } } }"""
    response = await _post(client, query, variables={"n": 100})
    assert _code(response) == "QUERY_TOO_COMPLEX"


async def test_token_limit(client: httpx.AsyncClient) -> None:
    query = "{ " + " ".join("__typename" for _ in range(2100)) + " }"
    response = await _post(client, query)
    assert _code(response) == "QUERY_TOO_COMPLEX"


async def test_body_size_limit_is_413(client: httpx.AsyncClient) -> None:
    query = "{ __typename }" + " " * 70_000
    response = await _post(client, query)
    assert response.status_code == 413
    assert _code(response) == "QUERY_TOO_COMPLEX"


async def test_batch_size_limit(client: httpx.AsyncClient) -> None:
    batch = [{"query": "{ __typename }"}] * 11
    response = await client.post("/graphql", json=batch, headers=PORTAL)
    assert response.status_code == 400
    assert _code(response) == "QUERY_TOO_COMPLEX"


async def test_bogus_customer_id_is_refused_without_a_call(client: httpx.AsyncClient) -> None:
    for bogus in ["crm:'; DROP TABLE x", "nope:1", "erp:", "' OR 1=1", "billing:cus_$$"]:
        response = await _post(
            client, "query($id: ID!) { customer(id: $id) { id } }", variables={"id": bogus}
        )
        assert response.status_code == 200
        body = response.json()
        assert body["data"] == {"customer": None}
        assert body["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"


async def test_unknown_canonical_id_is_not_found(client: httpx.AsyncClient) -> None:
    response = await _post(client, '{ customer(id: "cw_0123456789abcdef") { id } }')
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_first_out_of_range_is_a_coded_error(client: httpx.AsyncClient) -> None:
    response = await _post(client, "{ customers(first: 1000) { nodes { id } } }")
    assert _code(response) == "VALIDATION_FAILED"
    response = await _post(client, "{ customers(first: -1) { nodes { id } } }")
    assert _code(response) == "VALIDATION_FAILED"
    response = await _post(client, '{ customers(after: "garbage") { nodes { id } } }')
    assert _code(response) == "VALIDATION_FAILED"


# ---------------------------------------------------------------- persisted operations


def _sha(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


async def test_apq_round_trip(client: httpx.AsyncClient) -> None:
    query = "{ systems { system } }"
    ext = {"persistedQuery": {"version": 1, "sha256Hash": _sha(query)}}
    miss = await client.post("/graphql", json={"extensions": ext}, headers=PORTAL)
    assert _code(miss) == "PERSISTED_QUERY_NOT_FOUND"
    register = await client.post(
        "/graphql", json={"query": query, "extensions": ext}, headers=PORTAL
    )
    assert register.json() == {"data": {"systems": []}}
    hit = await client.get(
        "/graphql",
        params={"extensions": f'{{"persistedQuery":{{"version":1,"sha256Hash":"{_sha(query)}"}}}}'},
        headers=PORTAL,
    )
    assert hit.json() == {"data": {"systems": []}}


async def test_apq_hash_must_match(client: httpx.AsyncClient) -> None:
    ext = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
    response = await client.post(
        "/graphql", json={"query": "{ __typename }", "extensions": ext}, headers=PORTAL
    )
    assert response.status_code == 400


async def test_persisted_only_client(runtime: Runtime, tmp_path: Path) -> None:
    safe = "{ systems { system } }"
    (tmp_path / "systems.graphql").write_text(safe)
    client = Client(
        id="kiosk", name="Kiosk", scopes=frozenset({"system:read"}), persisted_only=True
    )
    policy = ClientsPolicy(
        clients={"kiosk": client},
        api_keys={hash_api_key("kiosk-key"): "kiosk"},
        limits=QueryLimits(),
    )
    app = create_graphql_app(
        runtime,
        schema=read_schema(),
        clients=policy,
        persisted=PersistedOperations.from_folder(tmp_path),
    )
    headers = {"Authorization": "Bearer kiosk-key"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        plain = await http.post("/graphql", json={"query": safe}, headers=headers)
        assert _code(plain) == "FORBIDDEN"
        other = "{ __typename }"
        ext = {"persistedQuery": {"version": 1, "sha256Hash": _sha(other)}}
        unlisted = await http.post(
            "/graphql", json={"query": other, "extensions": ext}, headers=headers
        )
        assert _code(unlisted) == "FORBIDDEN"
        ext = {"persistedQuery": {"version": 1, "sha256Hash": _sha(safe)}}
        listed = await http.post("/graphql", json={"extensions": ext}, headers=headers)
        assert listed.json() == {"data": {"systems": []}}
