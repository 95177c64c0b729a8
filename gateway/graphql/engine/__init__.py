"""The GraphQL engine: how the gateway runs one operation, and what differs from strawberry.

The schema is strawberry's (``gateway.graphql.schema``); strawberry's stock way of running
it, ``Schema.execute`` behind its ASGI view, is not used for queries and mutations.
Every transport (``gateway.graphql.app`` for HTTP, ``gateway.graphql.websocket`` for
graphql-transport-ws) hands operations to ``OperationRunner`` instead, which differs in
these ways:

- **Admission before anything runs** (``runner.OperationRunner.admit``): persisted
  operations and persisted-only clients, the method (no mutation over GET), the depth,
  alias, token and cost limits, the client's cost budget, then validation. A query over
  a limit never reaches a resolver, over either transport.
- **Parse and validation cached per query text** (``documents.DocumentCache``, a bounded
  LRU): strawberry parses and validates every request, and for the customer 360 that
  is most of what the stock path costs. Validation runs graphql-core's specified rules;
  strawberry adds two of its own, for ``Maybe`` arguments and one-of inputs, which this
  schema does not use (a schema that starts to must add them here).
- **graphql-core's ``execute`` called directly** with strawberry's fast
  ``is_awaitable`` and a lean executor (``lean``, built on strawberry's own execution
  context class): no reference cycle per operation (graphql-core keeps bound methods of
  the executor on itself), plain leaf fields read as attributes, and resolvers with
  plain arguments called without strawberry's per-call argument conversion. Fields with
  permission classes, extensions or other arguments keep strawberry's path.
- **The request deadline** bounds execution (an ``asyncio.timeout`` on asyncio, an anyio
  cancel scope elsewhere): past it the answer is ``SYSTEM_TIMEOUT``.
- **Errors always coded** (``outcome.format_error``): every error carries
  ``extensions.code``; a resolver's unexpected exception is logged and answered
  ``INTERNAL_ERROR`` with the correlation id, never its message.

Why, measured: the customer 360 of ``scripts/bench_customer360.py`` run in-process
against a warm read model (no vendor call; 16 concurrent callers, 3,000 operations,
on a shared 2-core machine), CPU per operation and garbage the cyclic collector had to
find:

====================================  ===============  ======================
path                                  CPU/operation    objects left to the gc
====================================  ===============  ======================
strawberry ``Schema.execute``         7.9 - 9.3 ms     about 1,550 per op
runner, graphql-core's executor       2.1 - 2.3 ms     about 95 per op
runner with the lean executor         1.4 - 1.6 ms     none
====================================  ===============  ======================

``scripts/bench_customer360.py`` measures the same through HTTP against the no-GraphQL
floor. ``tests/graphql/test_engine_parity.py`` runs the same queries (customer 360,
look-ups, fragments, aliases, variables, errors, mutations' validation errors) through
both paths and compares the answers; ``tests/graphql/test_execution.py`` covers the lean
executor's own cases. The engine builds on graphql-core 3.3's executor internals and on
strawberry's schema converter: both are pinned to the tested range in pyproject.toml.
"""

from gateway.graphql.engine.outcome import (
    Outcome,
    RequestParams,
    format_error,
    throttled_outcome,
)
from gateway.graphql.engine.runner import OperationRunner

__all__ = ["OperationRunner", "Outcome", "RequestParams", "format_error", "throttled_outcome"]
