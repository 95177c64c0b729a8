"""Fixtures for the GraphQL layer: a small runtime with a real SQLite store.

``Runtime`` here carries the same four attributes as ``gateway.runtime.Runtime``; the
``systems`` part is given per test (real actors in the integration tests, a fixed list of
states in the HTTP tests, which never reach a system).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.governance.clients import ClientsPolicy, load_clients_policy
from gateway.graphql.app import create_graphql_app
from gateway.graphql.schema import build_schema
from tests.support.paths import ROOT

PORTAL = {"Authorization": "Bearer demo-portal-key"}
WIDGET = {"Authorization": "Bearer demo-widget-key"}
OPS = {"Authorization": "Bearer demo-ops-key"}


@dataclass
class Policies:
    clients: ClientsPolicy
    folder: Path = ROOT / "policies"


@dataclass
class Settings:
    policies_dir: Path = ROOT / "policies"


@dataclass
class NoSystems:
    """Systems for tests that must never reach one: any ask fails the test."""

    asked: list[Any] = field(default_factory=list)

    def __getitem__(self, system: Any) -> Any:
        raise AssertionError(f"test reached the {system} actor")

    def states(self) -> list[Any]:
        return []


@dataclass
class Runtime:
    settings: Any
    policies: Any
    store: Any
    systems: Any


_READ_SCHEMA: Any = None


def read_schema() -> Any:
    """The read side's schema alone, built once (the write path is tested on its own)."""
    global _READ_SCHEMA
    if _READ_SCHEMA is None:
        _READ_SCHEMA = build_schema(write_path=False)
    return _READ_SCHEMA


@pytest.fixture
def clients_policy() -> ClientsPolicy:
    return load_clients_policy(ROOT / "policies" / "clients.toml")


@pytest.fixture
async def runtime(store: Any, clients_policy: ClientsPolicy) -> Runtime:
    return Runtime(Settings(), Policies(clients_policy), store, NoSystems())


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_graphql_app(runtime, schema=read_schema())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http
