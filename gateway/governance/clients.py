"""Clients, credentials and scopes from ``policies/clients.toml``, validated into frozen config.

A client authenticates with ``Authorization: Bearer <credential>``, where the credential is
either an API key (stored only as its SHA-256 hex digest) or a JWT from a configured
issuer (HS256 with a shared secret, or RS256 with the issuer's public key; ``exp``,
``nbf`` and ``aud`` are checked). Each client holds scopes (``customer:read``,
``invoice:read``, ...), and flags: may it introspect the schema, may it open GraphiQL,
may it only run persisted operations.

The file::

    [limits]                       # query limits, all optional
    max_depth = 12
    max_tokens = 2000
    max_aliases = 30
    max_cost = 5000
    max_body_bytes = 65536
    max_batch = 10
    default_list_size = 20

    [[clients]]
    id = "demo-portal"
    name = "Demo customer portal"
    api_key_sha256 = ["<hex digest>", ...]
    scopes = ["customer:read", ...]       # "*" grants every scope
    introspection = true
    graphiql = true
    persisted_only = false

    [[issuers]]
    issuer = "https://login.example.com"
    algorithm = "HS256"                   # or "RS256"
    secret = "..."                        # HS256: or secret_env = "VAR"
    public_key = "-----BEGIN PUBLIC KEY-----..."   # RS256: or public_key_file = "path"
    audience = "crosswalk"
    allowed_scopes = ["customer:read", ...]   # token scopes are cut down to these
    introspection = false
    graphiql = false
    persisted_only = false

Any problem raises ``PolicyError(file, key, reason)``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gateway.governance.errors import PolicyError

__all__ = [
    "READ_SCOPES",
    "SCOPES",
    "WRITE_SCOPES",
    "Client",
    "ClientsPolicy",
    "Issuer",
    "QueryLimits",
    "hash_api_key",
    "load_clients_policy",
]

READ_SCOPES: frozenset[str] = frozenset(
    {
        "customer:read",
        "invoice:read",
        "case:read",
        "order:read",
        "subscription:read",
        "opportunity:read",
        "entitlement:read",
        "system:read",
        "operation:read",
    }
)
WRITE_SCOPES: frozenset[str] = frozenset(
    {
        "customer:write",
        "opportunity:write",
        "case:write",
        "subscription:write",
        "deadletter:replay",
    }
)
SCOPES: frozenset[str] = READ_SCOPES | WRITE_SCOPES

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


def hash_api_key(key: str) -> str:
    """The SHA-256 hex digest under which an API key is stored."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Client:
    """An authenticated caller: its id, name, scopes and what it may do besides queries."""

    id: str
    name: str
    scopes: frozenset[str] = frozenset()
    introspection: bool = False
    graphiql: bool = False
    persisted_only: bool = False
    #: "api_key" or "jwt"
    via: str = "api_key"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes or "*" in self.scopes


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """Limits checked before a query runs; over any of them answers QUERY_TOO_COMPLEX."""

    max_depth: int = 12
    max_tokens: int = 2000
    max_aliases: int = 30
    max_cost: int = 5000
    max_body_bytes: int = 64 * 1024
    max_batch: int = 10
    #: the list size assumed by the cost estimate when a query gives no ``first``
    default_list_size: int = 20


@dataclass(frozen=True, slots=True)
class Issuer:
    """A JWT issuer: how its tokens are verified and what its clients may do."""

    issuer: str
    algorithm: str
    key: str  # HS256 secret or RS256 PEM public key
    audience: str
    allowed_scopes: frozenset[str] = SCOPES
    introspection: bool = False
    graphiql: bool = False
    persisted_only: bool = False


@dataclass(frozen=True, slots=True)
class ClientsPolicy:
    """Every client and issuer the gateway accepts, and the query limits."""

    clients: Mapping[str, Client] = field(default_factory=lambda: MappingProxyType({}))
    #: SHA-256 hex digest of an API key -> client id
    api_keys: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    issuers: Mapping[str, Issuer] = field(default_factory=lambda: MappingProxyType({}))
    limits: QueryLimits = field(default_factory=QueryLimits)

    def client_for_api_key(self, key: str) -> Client | None:
        """The client owning this API key, or ``None``. Compares digests in constant time."""
        digest = hash_api_key(key)
        for stored, client_id in self.api_keys.items():
            if hmac.compare_digest(stored, digest):
                return self.clients[client_id]
        return None


# ---------------------------------------------------------------- loading


def _check_keys(file: Path, prefix: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise PolicyError(
                file, f"{prefix}.{key}", f"unknown key; expected one of {sorted(allowed)}"
            )


def _bool(file: Path, key: str, table: Mapping[str, Any], name: str) -> bool:
    value = table.get(name, False)
    if not isinstance(value, bool):
        raise PolicyError(file, f"{key}.{name}", f"must be true or false, got {value!r}")
    return value


def _str(file: Path, key: str, table: Mapping[str, Any], name: str) -> str:
    value = table.get(name)
    if not isinstance(value, str) or not value:
        raise PolicyError(file, f"{key}.{name}", f"must be a non-empty string, got {value!r}")
    return value


def _scopes(file: Path, key: str, value: Any) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise PolicyError(file, key, f"must be a list of scope names, got {value!r}")
    for scope in value:
        if scope != "*" and scope not in SCOPES:
            raise PolicyError(
                file, key, f"unknown scope {scope!r}; known scopes: {', '.join(sorted(SCOPES))}"
            )
    return frozenset(value)


def _limits(file: Path, table: Any) -> QueryLimits:
    if table is None:
        return QueryLimits()
    if not isinstance(table, dict):
        raise PolicyError(file, "limits", "must be a table")
    defaults = QueryLimits()
    allowed = set(QueryLimits.__dataclass_fields__)
    _check_keys(file, "limits", table, allowed)
    values: dict[str, int] = {}
    for name in allowed:
        value = table.get(name, getattr(defaults, name))
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PolicyError(file, f"limits.{name}", f"must be a positive integer, got {value!r}")
        values[name] = value
    return QueryLimits(**values)


def _client(file: Path, index: int, table: Any, seen_keys: dict[str, str]) -> Client:
    key = f"clients[{index}]"
    if not isinstance(table, dict):
        raise PolicyError(file, key, "must be a table")
    _check_keys(
        file,
        key,
        table,
        {"id", "name", "api_key_sha256", "scopes", "introspection", "graphiql", "persisted_only"},
    )
    client_id = _str(file, key, table, "id")
    if not _CLIENT_ID.match(client_id):
        raise PolicyError(file, f"{key}.id", f"must match {_CLIENT_ID.pattern}, got {client_id!r}")
    digests = table.get("api_key_sha256", [])
    if isinstance(digests, str):
        digests = [digests]
    if not isinstance(digests, list):
        raise PolicyError(file, f"{key}.api_key_sha256", "must be a list of SHA-256 hex digests")
    for digest in digests:
        if not isinstance(digest, str) or not _HEX64.match(digest):
            raise PolicyError(
                file,
                f"{key}.api_key_sha256",
                f"must be lower-case SHA-256 hex (64 characters), got {digest!r}; "
                "store the digest of the key, never the key itself",
            )
        if digest in seen_keys:
            raise PolicyError(
                file, f"{key}.api_key_sha256", f"key already belongs to '{seen_keys[digest]}'"
            )
        seen_keys[digest] = client_id
    return Client(
        id=client_id,
        name=str(table.get("name") or client_id),
        scopes=_scopes(file, f"{key}.scopes", table.get("scopes", [])),
        introspection=_bool(file, key, table, "introspection"),
        graphiql=_bool(file, key, table, "graphiql"),
        persisted_only=_bool(file, key, table, "persisted_only"),
    )


def _issuer(file: Path, index: int, table: Any) -> Issuer:
    key = f"issuers[{index}]"
    if not isinstance(table, dict):
        raise PolicyError(file, key, "must be a table")
    _check_keys(
        file,
        key,
        table,
        {
            "issuer",
            "algorithm",
            "secret",
            "secret_env",
            "public_key",
            "public_key_file",
            "audience",
            "allowed_scopes",
            "introspection",
            "graphiql",
            "persisted_only",
        },
    )
    algorithm = _str(file, key, table, "algorithm")
    if algorithm == "HS256":
        if "secret_env" in table:
            env = _str(file, key, table, "secret_env")
            secret = os.environ.get(env)
            if not secret:
                raise PolicyError(
                    file, f"{key}.secret_env", f"environment variable {env} is not set"
                )
        else:
            secret = _str(file, key, table, "secret")
        if len(secret) < 32:
            raise PolicyError(
                file, f"{key}.secret", "an HS256 secret must be at least 32 characters long"
            )
        material = secret
    elif algorithm == "RS256":
        if "public_key_file" in table:
            path = Path(_str(file, key, table, "public_key_file"))
            if not path.is_absolute():
                path = file.parent / path
            try:
                material = path.read_text()
            except OSError as exc:
                raise PolicyError(
                    file, f"{key}.public_key_file", f"cannot read {path}: {exc}"
                ) from exc
        else:
            material = _str(file, key, table, "public_key")
        if "BEGIN PUBLIC KEY" not in material:
            raise PolicyError(file, f"{key}.public_key", "must be a PEM public key")
    else:
        raise PolicyError(
            file, f"{key}.algorithm", f"must be 'HS256' or 'RS256', got {algorithm!r}"
        )
    allowed = table.get("allowed_scopes")
    return Issuer(
        issuer=_str(file, key, table, "issuer"),
        algorithm=algorithm,
        key=material,
        audience=_str(file, key, table, "audience"),
        allowed_scopes=SCOPES
        if allowed is None
        else _scopes(file, f"{key}.allowed_scopes", allowed),
        introspection=_bool(file, key, table, "introspection"),
        graphiql=_bool(file, key, table, "graphiql"),
        persisted_only=_bool(file, key, table, "persisted_only"),
    )


def load_clients_policy(path: Path | str) -> ClientsPolicy:
    """Read and validate ``policies/clients.toml``; raise ``PolicyError`` on any problem."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text())
    except FileNotFoundError as exc:
        raise PolicyError(file, "", "file not found; create it (see docs in this module)") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(file, "", f"cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(file, "", f"not valid TOML: {exc}") from exc
    _check_keys(file, "", data, {"limits", "clients", "issuers"})
    limits = _limits(file, data.get("limits"))
    raw_clients = data.get("clients", [])
    if not isinstance(raw_clients, list):
        raise PolicyError(file, "clients", "must be an array of tables ([[clients]])")
    clients: dict[str, Client] = {}
    seen_keys: dict[str, str] = {}
    for index, table in enumerate(raw_clients):
        client = _client(file, index, table, seen_keys)
        if client.id in clients:
            raise PolicyError(file, f"clients[{index}].id", f"duplicate client id {client.id!r}")
        clients[client.id] = client
    raw_issuers = data.get("issuers", [])
    if not isinstance(raw_issuers, list):
        raise PolicyError(file, "issuers", "must be an array of tables ([[issuers]])")
    issuers: dict[str, Issuer] = {}
    for index, table in enumerate(raw_issuers):
        issuer = _issuer(file, index, table)
        if issuer.issuer in issuers:
            raise PolicyError(
                file, f"issuers[{index}].issuer", f"duplicate issuer {issuer.issuer!r}"
            )
        issuers[issuer.issuer] = issuer
    return ClientsPolicy(
        clients=MappingProxyType(clients),
        api_keys=MappingProxyType(seen_keys),
        issuers=MappingProxyType(issuers),
        limits=limits,
    )
