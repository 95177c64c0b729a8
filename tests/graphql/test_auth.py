"""Authentication (API keys, JWTs) and field-level scopes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.governance.clients import hash_api_key, load_clients_policy
from gateway.governance.errors import PolicyError
from gateway.graphql.app import create_graphql_app
from tests.graphql.conftest import PORTAL, Policies, Runtime, read_schema
from tests.support.paths import ROOT

pytestmark = pytest.mark.anyio

HS_SECRET = "a-shared-secret-that-is-long-enough-0123456789"
HS_ISSUER = "https://hs.example.test/"
RS_ISSUER = "https://rs.example.test/"
QUERY = {"query": "{ systems { system } }"}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def policy_file(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> Path:
    public = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "rs.pem").write_bytes(public)
    file = tmp_path / "clients.toml"
    file.write_text(
        f"""
[[clients]]
id = "reader"
api_key_sha256 = ["{hash_api_key("reader-key")}"]
scopes = ["customer:read", "system:read"]

[[clients]]
id = "no-system"
api_key_sha256 = ["{hash_api_key("no-system-key")}"]
scopes = ["customer:read"]

[[issuers]]
issuer = "{HS_ISSUER}"
algorithm = "HS256"
secret = "{HS_SECRET}"
audience = "crosswalk"
allowed_scopes = ["system:read", "customer:read"]

[[issuers]]
issuer = "{RS_ISSUER}"
algorithm = "RS256"
public_key_file = "rs.pem"
audience = "crosswalk"
"""
    )
    return file


@pytest.fixture
async def http(runtime: Runtime, policy_file: Path) -> AsyncIterator[httpx.AsyncClient]:
    runtime.policies = Policies(load_clients_policy(policy_file))
    app = create_graphql_app(runtime, schema=read_schema())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as client:
        yield client


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": HS_ISSUER,
        "sub": "portal-user",
        "aud": "crosswalk",
        "iat": now,
        "exp": now + 300,
        "scope": "system:read customer:read invoice:read",
    }
    claims.update(overrides)
    return claims


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _code(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[int, str | None]:
    response = await client.post("/graphql", json=QUERY, headers=headers)
    body = response.json()
    errors = body.get("errors") or [{}]
    return response.status_code, errors[0].get("extensions", {}).get("code")


async def test_demo_portal_key_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json=QUERY, headers=PORTAL)
    assert response.json() == {"data": {"systems": []}}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": "Basic c2FuZGJveDpzYW5kYm94"},
        {"Authorization": "Bearer "},
    ],
)
async def test_missing_or_bad_credentials_are_401(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post("/graphql", json=QUERY, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_hs256_jwt_is_accepted_and_scopes_are_cut_to_the_issuers(
    http: httpx.AsyncClient,
) -> None:
    token = jwt.encode(_claims(), HS_SECRET, algorithm="HS256")
    assert await _code(http, _bearer(token)) == (200, None)


async def test_rs256_jwt_is_accepted(http: httpx.AsyncClient, rsa_key: rsa.RSAPrivateKey) -> None:
    token = jwt.encode(_claims(iss=RS_ISSUER), rsa_key, algorithm="RS256")
    assert await _code(http, _bearer(token)) == (200, None)


@pytest.mark.parametrize(
    "claims",
    [
        _claims(exp=int(time.time()) - 3600),
        _claims(nbf=int(time.time()) + 3600),
        _claims(aud="someone-else"),
        _claims(iss="https://unknown.example.test/"),
        {k: v for k, v in _claims().items() if k != "exp"},
    ],
    ids=["expired", "not-yet-valid", "wrong-audience", "unknown-issuer", "no-exp"],
)
async def test_bad_jwts_are_401(http: httpx.AsyncClient, claims: dict[str, Any]) -> None:
    token = jwt.encode(claims, HS_SECRET, algorithm="HS256")
    assert await _code(http, _bearer(token)) == (401, "UNAUTHENTICATED")


async def test_forged_jwts_are_401(http: httpx.AsyncClient, rsa_key: rsa.RSAPrivateKey) -> None:
    forged = jwt.encode(_claims(), "another-secret-that-is-long-enough-0123456", algorithm="HS256")
    assert await _code(http, _bearer(forged)) == (401, "UNAUTHENTICATED")
    # an RS256 issuer's token signed HS256 with its public key must not pass
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header, payload, _ = jwt.encode(_claims(iss=RS_ISSUER), "x" * 32, algorithm="HS256").split(".")
    import base64
    import hashlib
    import hmac

    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    confused = f"{header}.{payload}." + base64.urlsafe_b64encode(signature).decode().rstrip("=")
    assert await _code(http, _bearer(confused)) == (401, "UNAUTHENTICATED")
    assert await _code(http, _bearer("aaa.bbb.ccc")) == (401, "UNAUTHENTICATED")


async def test_missing_scope_is_forbidden_on_that_field_only(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql",
        json={"query": "{ systems { system } customers(first: 1) { nodes { id } } }"},
        headers=_bearer("no-system-key"),
    )
    body = response.json()
    assert response.status_code == 200
    assert body["data"] == {"systems": None, "customers": {"nodes": []}}
    (error,) = body["errors"]
    assert error["path"] == ["systems"]
    assert error["extensions"]["code"] == "FORBIDDEN"


async def test_introspection_is_per_client(http: httpx.AsyncClient) -> None:
    query = {"query": "{ __schema { queryType { name } } }"}
    response = await http.post("/graphql", json=query, headers=_bearer("reader-key"))
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    typename = await http.post(
        "/graphql", json={"query": "{ __typename }"}, headers=_bearer("reader-key")
    )
    assert typename.json() == {"data": {"__typename": "Query"}}


async def test_demo_client_may_introspect(client: httpx.AsyncClient) -> None:
    query = {"query": "{ __schema { queryType { name } } }"}
    response = await client.post("/graphql", json=query, headers=PORTAL)
    assert response.json() == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


async def test_graphiql_is_per_client(http: httpx.AsyncClient) -> None:
    browser = {"Accept": "text/html"}
    response = await http.get("/graphql", headers={**browser, **_bearer("reader-key")})
    assert response.status_code == 403
    response = await http.get("/graphql", headers=browser)
    assert response.status_code == 403  # no client of this policy may use GraphiQL


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[[clients]]\nid = 'x'\nscopes = ['nope:read']\n", "clients[0].scopes"),
        (
            "[[clients]]\nid = 'x'\napi_key_sha256 = ['demo-portal-key']\n",
            "clients[0].api_key_sha256",
        ),
        ("[[clients]]\nid = 'x'\nmystery = 1\n", "clients[0].mystery"),
        ("[limits]\nmax_depth = 0\n", "limits.max_depth"),
        (
            "[[issuers]]\nissuer='i'\nalgorithm='HS256'\nsecret='short'\naudience='a'\n",
            "issuers[0].secret",
        ),
        ("[[issuers]]\nissuer='i'\nalgorithm='none'\naudience='a'\n", "issuers[0].algorithm"),
        ("this is = not toml [", ""),
    ],
)
def test_bad_policy_files_name_file_key_and_reason(tmp_path: Path, text: str, key: str) -> None:
    file = tmp_path / "clients.toml"
    file.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_clients_policy(file)
    assert caught.value.file == str(file)
    assert caught.value.key == key
    assert caught.value.reason


def test_shipped_policy_has_the_three_demo_keys_hashed() -> None:
    policy = load_clients_policy(ROOT / "policies" / "clients.toml")
    text = (ROOT / "policies" / "clients.toml").read_text()
    for key in ("demo-portal-key", "demo-widget-key", "demo-ops-key"):
        assert f'"{key}"' not in text
        assert policy.client_for_api_key(key) is not None
    portal = policy.client_for_api_key("demo-portal-key")
    widget = policy.client_for_api_key("demo-widget-key")
    ops = policy.client_for_api_key("demo-ops-key")
    assert portal is not None
    assert widget is not None
    assert ops is not None
    assert portal.has_scope("case:read")
    assert not portal.has_scope("customer:write")
    assert widget.has_scope("customer:write")
    assert not widget.has_scope("deadletter:replay")
    assert ops.has_scope("deadletter:replay")
