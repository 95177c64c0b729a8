"""The Crosswalk GraphQL schema: reads from here, writes from the write path's modules.

``Query`` inherits ``ReadQuery`` and the write path's query fields
(``gateway.graphql.operations.OperationQueries``: ``operation``, ``deadLetters``, ...)
when that module exists. ``Mutation`` and ``Subscription`` come from
``gateway.graphql.mutations`` and ``gateway.graphql.subscriptions`` when those modules
exist, so the schema picks them up as they land.
"""

from __future__ import annotations

import importlib
from typing import Any

import strawberry

from gateway.graphql.audit import AuditQuery
from gateway.graphql.lookups import LookupQuery
from gateway.graphql.queries import ReadQuery
from gateway.graphql.reconciliation import ReconciliationQuery

__all__ = ["build_schema", "get_schema"]

_QUERY_DESCRIPTION = (
    "Everything a portal or widget can read: the customer 360, system health, operations."
)


def _optional(module: str, name: str) -> Any:
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise  # the module exists but something it imports does not: a real error
        return None
    return getattr(loaded, name, None)


def build_schema(*, write_path: bool = True) -> strawberry.Schema:
    """Build the schema from the read side and whatever the write side provides.

    ``write_path=False`` builds the read side alone (tests of the read path use it).
    """
    bases: list[type] = [ReadQuery, LookupQuery, ReconciliationQuery, AuditQuery]
    for module, name in (
        ()
        if not write_path
        else (
            ("gateway.graphql.operations", "OperationQueries"),
            ("gateway.graphql.mutations", "OperationQuery"),
        )
    ):
        extra = _optional(module, name)
        if extra is not None and extra not in bases:
            bases.append(extra)
    query = strawberry.type(type("Query", tuple(bases), {}), description=_QUERY_DESCRIPTION)
    return strawberry.Schema(
        query=query,
        mutation=_optional("gateway.graphql.mutations", "Mutation") if write_path else None,
        subscription=(
            _optional("gateway.graphql.subscriptions", "Subscription") if write_path else None
        ),
    )


_SCHEMA: strawberry.Schema | None = None


def get_schema() -> strawberry.Schema:
    """The full schema, built once on first use."""
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = build_schema()
    return _SCHEMA
