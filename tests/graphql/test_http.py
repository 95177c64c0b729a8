"""GraphQL over HTTP: methods, media types and status codes as the spec asks."""

from __future__ import annotations

import httpx
import pytest

from tests.graphql.conftest import PORTAL, WIDGET

pytestmark = pytest.mark.anyio

GQL = "application/graphql-response+json"
QUERY = "{ systems { system breaker } }"


async def test_post_json_answers_200_with_data(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": QUERY}, headers=PORTAL)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"data": {"systems": []}}


async def test_get_query_is_allowed(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": QUERY}, headers=PORTAL)
    assert response.status_code == 200
    assert response.json() == {"data": {"systems": []}}


async def test_graphql_response_json_is_preferred_when_named(client: httpx.AsyncClient) -> None:
    headers = {**PORTAL, "Accept": f"{GQL}, application/json;q=0.9"}
    response = await client.post("/graphql", json={"query": QUERY}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(GQL)


async def test_unacceptable_accept_is_406(client: httpx.AsyncClient) -> None:
    headers = {**PORTAL, "Accept": "application/xml"}
    response = await client.post("/graphql", json={"query": QUERY}, headers=headers)
    assert response.status_code == 406


async def test_syntax_error_status_depends_on_media_type(client: httpx.AsyncClient) -> None:
    body = {"query": "{ systems { "}
    legacy = await client.post("/graphql", json=body, headers=PORTAL)
    assert legacy.status_code == 200
    assert "data" not in legacy.json()
    assert legacy.json()["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"
    modern = await client.post("/graphql", json=body, headers={**PORTAL, "Accept": GQL})
    assert modern.status_code == 400
    assert modern.json()["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"


async def test_unknown_field_is_a_validation_error(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json={"query": "{ nope }"}, headers={**PORTAL, "Accept": GQL}
    )
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert "nope" in error["message"]
    assert error["extensions"]["code"] == "VALIDATION_FAILED"


async def test_wrong_variable_type_is_a_request_error(client: httpx.AsyncClient) -> None:
    body = {"query": "query($id: ID!) { customer(id: $id) { id } }", "variables": {"id": 1.5}}
    response = await client.post("/graphql", json=body, headers={**PORTAL, "Accept": GQL})
    assert response.status_code == 400
    payload = response.json()
    assert "data" not in payload
    assert payload["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"


async def test_body_that_is_not_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        content=b"{not json",
        headers={**PORTAL, "Content-Type": "application/json"},
    )
    assert response.status_code == 400


async def test_params_of_the_wrong_type_are_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": 42}, headers=PORTAL)
    assert response.status_code == 400
    response = await client.post(
        "/graphql", json={"query": QUERY, "variables": [1]}, headers=PORTAL
    )
    assert response.status_code == 400


async def test_wrong_content_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", content=QUERY, headers={**PORTAL, "Content-Type": "text/plain"}
    )
    assert response.status_code == 415


async def test_mutation_over_get_is_405(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": "mutation { x }"}, headers=WIDGET)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_other_methods_are_405(client: httpx.AsyncClient) -> None:
    response = await client.put("/graphql", json={"query": QUERY}, headers=PORTAL)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


async def test_variables_on_get_must_be_json(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/graphql", params={"query": QUERY, "variables": "{oops"}, headers=PORTAL
    )
    assert response.status_code == 400


async def test_several_operations_need_an_operation_name(client: httpx.AsyncClient) -> None:
    query = "query A { systems { system } } query B { systems { breaker } }"
    response = await client.post("/graphql", json={"query": query}, headers=PORTAL)
    assert response.json()["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"
    response = await client.post(
        "/graphql", json={"query": query, "operationName": "B"}, headers=PORTAL
    )
    assert response.json() == {"data": {"systems": []}}


async def test_batch_answers_a_list(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json=[{"query": QUERY}, {"query": "{ nope }"}], headers=PORTAL
    )
    assert response.status_code == 200
    first, second = response.json()
    assert first == {"data": {"systems": []}}
    assert second["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"


async def test_graphiql_on_browser_get(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html,*/*;q=0.8"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_correlation_id_header_is_used(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        json={"query": '{ customer(id: "crm:bad id") { id } }'},
        headers={**PORTAL, "X-Correlation-ID": "abc-123"},
    )
    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"
