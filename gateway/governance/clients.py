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
    max_introspection_lists = 3    # introspection: list fields along one path
    max_introspection_of_type = 12 # introspection: ofType levels
    body_seconds = 10              # seconds to send the request body (else 408)

    [ops]                          # /metrics and /readyz's details, all optional
    access = "ops"                 # "ops": a client with the ops scope; "open": anyone
    port = 9100                    # also serve them on this port, without auth
    host = "127.0.0.1"             # (the separate port's address)

    [[clients]]
    id = "demo-widget"
    name = "Demo CRM widget"
    system = "crm"                        # optional: the system whose data it writes as;
                                          # field ownership checks its writes against it
    api_key_sha256 = ["<hex digest>", ...]
    scopes = ["customer:read", ...]       # "*" grants every scope
    introspection = true
    graphiql = true
    persisted_only = false
    requests_per_minute = 600             # rate limit: requests (HTTP or websocket)
    cost_per_minute = 100000              # rate limit: estimated query cost spent

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
    requests_per_minute = 600             # per token subject
    cost_per_minute = 100000

Any problem raises ``PolicyError(file, key, reason)``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from canonical import System
from gateway.governance._toml import PolicyTable, read_policy

__all__ = [
    "OPS_SCOPES",
    "READ_SCOPES",
    "SCOPES",
    "WRITE_SCOPES",
    "Client",
    "ClientsPolicy",
    "Issuer",
    "OpsEndpoints",
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
#: operators: every client's operations, /metrics and /readyz's details
OPS_SCOPES: frozenset[str] = frozenset({"ops"})
#: spending the systems' call quotas on demand (``Query.customer(maxAge:)``)
QUOTA_SCOPES: frozenset[str] = frozenset({"quota:spend"})
SCOPES: frozenset[str] = READ_SCOPES | WRITE_SCOPES | OPS_SCOPES | QUOTA_SCOPES

#: a client's rate limits unless clients.toml says otherwise
DEFAULT_REQUESTS_PER_MINUTE = 600
DEFAULT_COST_PER_MINUTE = 100_000
#: ops access: a client with the ``ops`` scope, or anyone who reaches the port
OPS_ACCESS = ("ops", "open")

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
    #: the system this client speaks for (field ownership on writes); None: no system
    system: System | None = None
    #: rate limits (gateway.graphql.ratelimit): requests and estimated query cost
    requests_per_minute: int = DEFAULT_REQUESTS_PER_MINUTE
    cost_per_minute: int = DEFAULT_COST_PER_MINUTE

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
    #: introspection is measured by shape, not depth or cost (gateway.graphql.limits):
    #: list fields along one path (types > fields > args is 3) and ofType levels
    max_introspection_lists: int = 3
    max_introspection_of_type: int = 12
    #: seconds a client may take to send a request body (slow senders answer 408)
    body_seconds: int = 10


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
    requests_per_minute: int = DEFAULT_REQUESTS_PER_MINUTE
    cost_per_minute: int = DEFAULT_COST_PER_MINUTE


@dataclass(frozen=True, slots=True)
class OpsEndpoints:
    """Who may read ``/metrics`` and ``/readyz``'s details, and where.

    ``access``: ``"ops"`` (a client with the ``ops`` scope, by default) or ``"open"``
    (anyone who can reach the gateway's port). ``port``: also serve both, without auth,
    on this separate port (bound to ``host``), e.g. one only the monitoring network
    reaches. A bare ``/readyz`` (200 or 503, no details) is always open.
    """

    access: str = "ops"
    port: int | None = None
    host: str = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class ClientsPolicy:
    """Every client and issuer the gateway accepts, and the query limits."""

    clients: Mapping[str, Client] = field(default_factory=lambda: MappingProxyType({}))
    #: SHA-256 hex digest of an API key -> client id
    api_keys: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    issuers: Mapping[str, Issuer] = field(default_factory=lambda: MappingProxyType({}))
    limits: QueryLimits = field(default_factory=QueryLimits)
    ops: OpsEndpoints = field(default_factory=OpsEndpoints)

    def client_for_api_key(self, key: str) -> Client | None:
        """The client owning this API key, or ``None``. Compares digests in constant time."""
        digest = hash_api_key(key)
        for stored, client_id in self.api_keys.items():
            if hmac.compare_digest(stored, digest):
                return self.clients[client_id]
        return None


# ---------------------------------------------------------------- loading

_CLIENT_KEYS = {
    "id",
    "name",
    "system",
    "api_key_sha256",
    "scopes",
    "introspection",
    "graphiql",
    "persisted_only",
    "requests_per_minute",
    "cost_per_minute",
}
_ISSUER_KEYS = {
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
    "requests_per_minute",
    "cost_per_minute",
}
_OPS_KEYS = {"access", "port", "host"}


def _scopes(table: PolicyTable, name: str) -> frozenset[str]:
    scopes = table.strings(name, allow_empty=True, default=[])
    for scope in scopes:
        if scope != "*" and scope not in SCOPES:
            raise table.fail(
                name, f"unknown scope {scope!r}; known scopes: {', '.join(sorted(SCOPES))}"
            )
    return frozenset(scopes)


def _limits(table: PolicyTable) -> QueryLimits:
    defaults = QueryLimits()
    names = QueryLimits.__dataclass_fields__
    table.only(names)
    return QueryLimits(
        **{name: table.integer(name, minimum=1, default=getattr(defaults, name)) for name in names}
    )


def _rates(table: PolicyTable, limits: QueryLimits) -> tuple[int, int]:
    requests = table.integer("requests_per_minute", minimum=1, default=DEFAULT_REQUESTS_PER_MINUTE)
    cost = table.integer("cost_per_minute", minimum=1, default=DEFAULT_COST_PER_MINUTE)
    if cost < limits.max_cost:
        raise table.fail(
            "cost_per_minute",
            f"must be at least limits.max_cost ({limits.max_cost}), or the costliest "
            "query allowed could never run",
        )
    return requests, cost


def _ops(table: PolicyTable) -> OpsEndpoints:
    table.only(_OPS_KEYS)
    port = table.integer("port", minimum=1, default=0) if "port" in table else None
    if port is not None and port > 65535:
        raise table.fail("port", f"must be a TCP port (1-65535), got {port}")
    return OpsEndpoints(
        access=table.choice("access", OPS_ACCESS) if "access" in table else "ops",
        port=port,
        host=table.string("host", default="127.0.0.1"),
    )


def _client(table: PolicyTable, seen_keys: dict[str, str], limits: QueryLimits) -> Client:
    table.only(_CLIENT_KEYS)
    client_id = table.string("id")
    if not _CLIENT_ID.match(client_id):
        raise table.fail("id", f"must match {_CLIENT_ID.pattern}, got {client_id!r}")
    digests = table.get("api_key_sha256", [])
    if isinstance(digests, str):
        digests = [digests]
    if not isinstance(digests, list):
        raise table.fail("api_key_sha256", "must be a list of SHA-256 hex digests")
    for digest in digests:
        if not isinstance(digest, str) or not _HEX64.match(digest):
            raise table.fail(
                "api_key_sha256",
                f"must be lower-case SHA-256 hex (64 characters), got {digest!r}; "
                "store the digest of the key, never the key itself",
            )
        if digest in seen_keys:
            raise table.fail("api_key_sha256", f"key already belongs to '{seen_keys[digest]}'")
        seen_keys[digest] = client_id
    requests, cost = _rates(table, limits)
    return Client(
        id=client_id,
        name=table.string("name", default=client_id),
        scopes=_scopes(table, "scopes"),
        introspection=table.boolean("introspection", default=False),
        graphiql=table.boolean("graphiql", default=False),
        persisted_only=table.boolean("persisted_only", default=False),
        system=table.member("system", System) if "system" in table else None,
        requests_per_minute=requests,
        cost_per_minute=cost,
    )


def _issuer(table: PolicyTable, limits: QueryLimits) -> Issuer:
    table.only(_ISSUER_KEYS)
    algorithm = table.choice("algorithm", ("HS256", "RS256"))
    if algorithm == "HS256":
        if "secret_env" in table:
            env = table.string("secret_env")
            secret = os.environ.get(env)
            if not secret:
                raise table.fail("secret_env", f"environment variable {env} is not set")
        else:
            secret = table.string("secret")
        if len(secret) < 32:
            raise table.fail("secret", "an HS256 secret must be at least 32 characters long")
        material = secret
    else:
        if "public_key_file" in table:
            path = Path(table.string("public_key_file"))
            if not path.is_absolute():
                path = Path(table.file).parent / path
            try:
                material = path.read_text()
            except (OSError, ValueError) as exc:  # ValueError: not UTF-8, a NUL in the path
                raise table.fail("public_key_file", f"cannot read {path}: {exc}") from exc
        else:
            material = table.string("public_key")
        if "BEGIN PUBLIC KEY" not in material:
            raise table.fail("public_key", "must be a PEM public key")
    requests, cost = _rates(table, limits)
    return Issuer(
        issuer=table.string("issuer"),
        algorithm=algorithm,
        key=material,
        audience=table.string("audience"),
        allowed_scopes=_scopes(table, "allowed_scopes") if "allowed_scopes" in table else SCOPES,
        introspection=table.boolean("introspection", default=False),
        graphiql=table.boolean("graphiql", default=False),
        persisted_only=table.boolean("persisted_only", default=False),
        requests_per_minute=requests,
        cost_per_minute=cost,
    )


def load_clients_policy(path: Path | str) -> ClientsPolicy:
    """Read and validate ``policies/clients.toml``; raise ``PolicyError`` on any problem."""
    data = read_policy(path, if_missing="create it (see gateway/governance/clients.py)")
    data.only({"limits", "clients", "issuers", "ops"})
    limits = _limits(data.table("limits", required=False))
    ops = _ops(data.table("ops", required=False))
    clients: dict[str, Client] = {}
    seen_keys: dict[str, str] = {}
    for table in data.array("clients"):
        client = _client(table, seen_keys, limits)
        if client.id in clients:
            raise table.fail("id", f"duplicate client id {client.id!r}")
        clients[client.id] = client
    issuers: dict[str, Issuer] = {}
    for table in data.array("issuers"):
        issuer = _issuer(table, limits)
        if issuer.issuer in issuers:
            raise table.fail("issuer", f"duplicate issuer {issuer.issuer!r}")
        issuers[issuer.issuer] = issuer
    return ClientsPolicy(
        clients=MappingProxyType(clients),
        api_keys=MappingProxyType(seen_keys),
        issuers=MappingProxyType(issuers),
        limits=limits,
        ops=ops,
    )
