"""Running one GraphQL operation: persisted lookup, cached parse and validation
(``documents``), limits, execution with the lean executor (``lean``), and coded errors
(``outcome``). HTTP and websocket concerns live in ``gateway.graphql.app`` and
``gateway.graphql.websocket``.

Limits run before validation and before any resolver, so a query over a limit never
reaches a system.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from inspect import isawaitable
from typing import Any

import anyio
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    execute,
    get_operation_ast,
)
from strawberry import Schema
from strawberry.execution.is_awaitable import optimized_is_awaitable

from actors import tracing
from actors.context import CallContext, current_call, reset_call, set_call, trace_id_for
from gateway.governance.clients import Client, QueryLimits
from gateway.graphql.context import Context
from gateway.graphql.engine.documents import DocumentCache
from gateway.graphql.engine.lean import executor_class
from gateway.graphql.engine.outcome import (
    Outcome,
    RequestParams,
    format_error,
    request_error,
    throttled_outcome,
)
from gateway.graphql.errors import CodedError, ErrorCode
from gateway.graphql.limits import Analysis, analyze, check_limits
from gateway.graphql.persisted import PersistedOperations, sha256_hex
from gateway.graphql.ratelimit import OverBudget, RateLimiter

__all__ = ["OperationRunner"]

#: extra time past the request deadline before the whole operation is abandoned
_GRACE_SECONDS = 0.25


def _call_for(context: Context) -> CallContext:
    """The request's call context, naming its client as the actor."""
    call = current_call()
    if call is None:  # executed without the HTTP middleware (tests, in-process callers)
        cid = context.correlation_id
        return CallContext(cid, trace_id_for(cid), actor=context.client.id)
    return replace(call, actor=context.client.id)


async def _within(awaitable: Awaitable[Any], seconds: float) -> Any:
    """``awaitable``'s value, or None once ``seconds`` have passed (it is then cancelled).

    On asyncio an ``asyncio.timeout`` does what ``anyio.move_on_after`` does at a fraction
    of its cost (one per request); other backends keep the cancel scope.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        with anyio.move_on_after(seconds):
            return await awaitable
        return None
    timeout = asyncio.timeout(seconds)
    try:
        async with timeout:
            return await awaitable
    except TimeoutError:
        if not timeout.expired():
            raise  # the operation's own, not the deadline
        return None


class OperationRunner:
    """Runs GraphQL operations for authenticated clients against one strawberry schema.

    Every transport (GET, POST, graphql-transport-ws) goes through ``admit`` (persisted
    operations, persisted-only clients, method, limits, cost budget, validation) and then
    ``execute`` (or a subscription's source stream), so none can skip a check.
    """

    def __init__(
        self,
        schema: Schema,
        *,
        limits: QueryLimits,
        persisted: PersistedOperations | None = None,
        cache_size: int = 1000,
        rates: RateLimiter | None = None,
    ) -> None:
        self.schema = schema
        self.rates = rates or RateLimiter()
        self.graphql_schema: GraphQLSchema = schema._schema
        self.limits = limits
        self.persisted = persisted or PersistedOperations()
        self._documents = DocumentCache(self.graphql_schema, limits, cache_size)
        self._cache_size = cache_size
        #: told each operation's (name, type, outcome, seconds): the gateway's metrics
        self.observe: Callable[[str | None, str, str, float], None] | None = None
        self._analyses: dict[tuple[str, str | None, tuple[tuple[str, int], ...]], Analysis] = {}
        # strawberry's is_awaitable has a fast path for plain values: most results are
        self._executor_kwargs: dict[str, Any] = {
            "is_awaitable": optimized_is_awaitable,
            "executor_class": executor_class(schema),
        }

    def _analysis(
        self,
        query: str,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        params: RequestParams,
    ) -> Analysis:
        # only integer variables can change the estimate (page sizes): key on those
        numbers = tuple(
            sorted(
                (k, v)
                for k, v in (params.variables or {}).items()
                if isinstance(v, int) and not isinstance(v, bool)
            )
        )
        key = (query, params.operation_name, numbers)
        analysis = self._analyses.get(key)
        if analysis is None:
            analysis = analyze(
                self.graphql_schema,
                document,
                operation,
                params.variables,
                default_list_size=self.limits.default_list_size,
            )
            if len(self._analyses) >= self._cache_size:
                self._analyses.clear()  # rare: a flood of distinct documents
            self._analyses[key] = analysis
        return analysis

    # ------------------------------------------------------------ steps

    def resolve_query(self, params: RequestParams, client: Client) -> str | Outcome:
        """The query text to run, after the persisted-operation protocol and client mode."""
        persisted = (params.extensions or {}).get("persistedQuery")
        if persisted is None:
            if client.persisted_only:
                return request_error(
                    CodedError(
                        ErrorCode.FORBIDDEN,
                        f"Client '{client.id}' may only run persisted operations: send "
                        "extensions.persistedQuery.sha256Hash of a safelisted operation.",
                    )
                )
            if params.query is None:
                return request_error(
                    CodedError(
                        ErrorCode.VALIDATION_FAILED,
                        "The request has no 'query' (and no persisted operation hash).",
                    ),
                    status=400,
                )
            return params.query
        digest = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
        if not isinstance(digest, str) or len(digest) != 64 or persisted.get("version", 1) != 1:
            return request_error(
                CodedError(
                    ErrorCode.VALIDATION_FAILED,
                    "extensions.persistedQuery must be {version: 1, sha256Hash: <64 hex>}.",
                ),
                status=400,
            )
        digest = digest.lower()
        if client.persisted_only and not self.persisted.is_safelisted(digest):
            return request_error(
                CodedError(
                    ErrorCode.FORBIDDEN,
                    f"Operation {digest[:12]}... is not safelisted; client '{client.id}' "
                    "may only run safelisted persisted operations.",
                )
            )
        if params.query is not None:
            if sha256_hex(params.query) != digest:
                return request_error(
                    CodedError(
                        ErrorCode.VALIDATION_FAILED,
                        "extensions.persistedQuery.sha256Hash does not match the query's "
                        "SHA-256; hash the exact query text.",
                    ),
                    status=400,
                )
            self.persisted.register(digest, params.query)
            return params.query
        query = self.persisted.get(digest)
        if query is None:
            return request_error(
                CodedError(
                    ErrorCode.PERSISTED_QUERY_NOT_FOUND,
                    "PersistedQueryNotFound: resend with the query text to register it.",
                )
            )
        return query

    def admit(
        self, params: RequestParams, client: Client, *, transport: str
    ) -> tuple[DocumentNode, OperationDefinitionNode] | Outcome:
        """Every check before an operation runs, for ``transport`` "GET", "POST" or "WS"
        (graphql-transport-ws, where subscriptions are allowed)."""
        query = self.resolve_query(params, client)
        if isinstance(query, Outcome):
            return query
        return self.prepare(query, params, client, method=transport)

    async def run(
        self, params: RequestParams, client: Client, context: Context, *, transport: str
    ) -> Outcome:
        """Admit and execute one query or mutation."""
        started = time.perf_counter()
        prepared = self.admit(params, client, transport=transport)
        if isinstance(prepared, Outcome):
            if self.observe is not None:
                self.observe(params.operation_name, "unknown", "rejected", 0.0)
            return prepared
        document, operation = prepared
        if tracing.enabled():
            name = operation.name.value if operation.name else params.operation_name
            attributes = {
                "graphql.operation.type": operation.operation.value,
                "graphql.operation.name": name or "",
                "crosswalk.correlation_id": context.correlation_id,
                "crosswalk.client": client.id,
            }
            with tracing.span(
                f"graphql {operation.operation.value} {name or ''}".strip(), attributes
            ):
                outcome = await self.execute(document, params, context)
        else:
            outcome = await self.execute(document, params, context)
        if self.observe is not None:
            result = (
                "rejected"
                if outcome.request_error
                else "error"
                if outcome.body.get("errors")
                else "ok"
            )
            name = operation.name.value if operation.name else params.operation_name
            kind = operation.operation.value
            self.observe(name, kind, result, time.perf_counter() - started)
        return outcome

    def prepare(
        self, query: str, params: RequestParams, client: Client, *, method: str
    ) -> tuple[DocumentNode, OperationDefinitionNode] | Outcome:
        """Parse, pick the operation, check method, limits and the client's cost budget,
        validate (cached)."""
        document = self._documents.parse(query)
        if isinstance(document, GraphQLError):
            return request_error(document)
        operation = get_operation_ast(document, params.operation_name)
        if operation is None:
            name = params.operation_name
            return request_error(
                CodedError(
                    ErrorCode.VALIDATION_FAILED,
                    f"No operation named {name!r} in the document."
                    if name
                    else "The document has several operations: say which in 'operationName'.",
                )
            )
        if method == "GET" and operation.operation is not OperationType.QUERY:
            return Outcome(
                {
                    "errors": [
                        CodedError(
                            ErrorCode.VALIDATION_FAILED,
                            f"A {operation.operation.value} cannot be sent with GET; use POST.",
                        ).formatted
                    ]
                },
                request_error=True,
                status=405,
                allow="POST",
            )
        if operation.operation is OperationType.SUBSCRIPTION and method != "WS":
            return request_error(
                CodedError(
                    ErrorCode.VALIDATION_FAILED,
                    "Subscriptions are served over websocket (graphql-transport-ws) "
                    "on this same path.",
                )
            )
        analysis = self._analysis(query, document, operation, params)
        try:
            check_limits(analysis, self.limits, client)
        except CodedError as exc:
            return request_error(exc)
        errors = self._documents.validate(document)
        if errors:
            return Outcome(
                {"errors": [format_error(e) for e in errors]},
                request_error=True,
            )
        try:
            self.rates.cost(client, analysis.cost)
        except OverBudget as throttled:
            return throttled_outcome(throttled)
        return document, operation

    async def execute(
        self, document: DocumentNode, params: RequestParams, context: Context
    ) -> Outcome:
        """Execute a prepared operation; the request deadline bounds it."""
        # the vendor calls this operation causes are the client's (the audit trail's actor)
        token = set_call(_call_for(context))
        try:
            result: Any = execute(
                self.graphql_schema,
                document,
                context_value=context,
                variable_values=params.variables,
                operation_name=params.operation_name,
                **self._executor_kwargs,
            )
            if isawaitable(result):
                result = await _within(result, context.remaining + _GRACE_SECONDS)
        finally:
            reset_call(token)
        if not isinstance(result, ExecutionResult):
            return Outcome(
                {
                    "data": None,
                    "errors": [
                        CodedError(
                            ErrorCode.SYSTEM_TIMEOUT,
                            "The request ran past its deadline.",
                        ).formatted
                    ],
                }
            )
        correlation_id = context.correlation_id
        errors = [format_error(e, correlation_id) for e in result.errors or ()]
        if result.data is None and errors and all(e.get("path") is None for e in errors):
            # variable coercion failed: execution never started
            for error in errors:
                error.setdefault("extensions", {}).setdefault("code", "VALIDATION_FAILED")
            return Outcome({"errors": errors}, request_error=True)
        body: dict[str, Any] = {"data": result.data}
        if errors:
            body["errors"] = errors
        if result.extensions:
            body["extensions"] = result.extensions
        return Outcome(body)
