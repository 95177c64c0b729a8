"""The Crosswalk GraphQL schema: the read side's queries, and the write path's queries,
mutations and subscription.

``Query`` joins the read side's query types (``ReadQuery``: the customer 360 and system
health; ``LookupQuery``; ``ReconciliationQuery``; ``AuditQuery``) with the write path's
(``gateway.graphql.operations.OperationQueries``: ``operation``, ``deadLetters``, ...).
``Mutation`` comes from ``gateway.graphql.mutations``, ``Subscription`` from
``gateway.graphql.subscriptions``.
"""

from __future__ import annotations

import strawberry

from gateway.graphql.audit import AuditQuery
from gateway.graphql.lookups import LookupQuery
from gateway.graphql.mutations import Mutation
from gateway.graphql.operations import OperationQueries
from gateway.graphql.queries import ReadQuery
from gateway.graphql.reconciliation import ReconciliationQuery
from gateway.graphql.subscriptions import Subscription

__all__ = ["build_schema", "get_schema"]

_QUERY_DESCRIPTION = (
    "Everything a portal or widget can read: the customer 360, system health, operations."
)


def build_schema(*, write_path: bool = True) -> strawberry.Schema:
    """Build the schema; ``write_path=False`` builds the read side alone (no mutations,
    no subscription, no operation queries: tests of the read path use it)."""
    bases: list[type] = [ReadQuery, LookupQuery, ReconciliationQuery, AuditQuery]
    if write_path:
        bases.append(OperationQueries)
    query = strawberry.type(type("Query", tuple(bases), {}), description=_QUERY_DESCRIPTION)
    return strawberry.Schema(
        query=query,
        mutation=Mutation if write_path else None,
        subscription=Subscription if write_path else None,
    )


_SCHEMA: strawberry.Schema | None = None


def get_schema() -> strawberry.Schema:
    """The full schema, built once on first use."""
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = build_schema()
    return _SCHEMA
