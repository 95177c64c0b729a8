"""The GraphQL-over-HTTP endpoint, mounted at ``/graphql`` by ``gateway.app``.

``create_graphql_app(runtime)`` returns an ASGI app: HTTP requests are served by a lean
path written for the GraphQL-over-HTTP specification (below); websocket requests
(graphql-transport-ws) go to strawberry's protocol handler with Crosswalk's own way of
running each operation (``gateway.graphql.websocket``). Both transports admit operations
through the same ``OperationRunner.admit``: the same limits, scopes, budgets and deadlines.

HTTP rules, in the order they are checked:

- methods: GET and POST, else 405 with ``Allow: GET, POST``;
- GET from a browser (``Accept: text/html``, no ``query``) serves GraphiQL, if the client
  (or, without credentials, any client) may use it;
- ``Accept``: ``application/graphql-response+json`` when asked for by name, else
  ``application/json`` (also for ``*/*`` and no header); nothing acceptable -> 406;
- ``Authorization: Bearer <API key or JWT>``; missing or bad -> 401 ``UNAUTHENTICATED``
  with ``WWW-Authenticate: Bearer``;
- the client's request rate (``requests_per_minute``) and query cost budget
  (``cost_per_minute``): past either, 429 with ``Retry-After`` and ``THROTTLED``;
- POST needs ``Content-Type: application/json`` (415 otherwise) and a body of at most
  ``max_body_bytes`` (413, ``QUERY_TOO_COMPLEX``) sent within ``body_seconds`` (408,
  ``VALIDATION_FAILED``: a slow sender cannot hold a connection open); a JSON array is a
  batch of at most ``max_batch`` operations; a body that is not JSON -> 400;
- parameters of the wrong type -> 400; a mutation over GET -> 405 with ``Allow: POST``;
- request errors (syntax, validation, limits, variable coercion): 200 under
  ``application/json`` (the spec's SHOULD), 400 under ``application/graphql-response+json``;
- a response with ``data`` (even with field errors): 200.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry import Schema
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UnsetType

from gateway.governance.clients import Client, ClientsPolicy, QueryLimits
from gateway.graphql.auth import Authenticator
from gateway.graphql.context import DEFAULT_DEADLINE_SECONDS, Context, RuntimeLike, current_time
from gateway.graphql.engine import OperationRunner, Outcome, RequestParams
from gateway.graphql.errors import CodedError, ErrorCode
from gateway.graphql.ide import graphiql_page
from gateway.graphql.identity import XRefCache
from gateway.graphql.persisted import PersistedOperations
from gateway.graphql.ratelimit import OverBudget, RateLimiter
from gateway.graphql.websocket import CrosswalkTransportWSHandler

__all__ = ["GRAPHQL_RESPONSE_JSON", "CrosswalkGraphQL", "create_graphql_app"]

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
_ANONYMOUS = Client(id="anonymous", name="not yet authenticated")


class _HTTPFailure(Exception):
    """Ends request handling with a fixed status and one coded error."""

    def __init__(
        self, status: int, error: CodedError, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error
        self.headers = headers or {}


def _header_map(scope: Scope) -> dict[str, str]:
    """The request's headers as one dict, the first of repeated names winning (as
    Starlette's ``Headers.get``): each lookup there scans every header again."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return headers


def _no_correlation_id() -> str | None:
    return None


try:  # looked up once, not per request
    from gateway.observability.correlation import current_correlation_id as _current_correlation_id
except ImportError:  # pragma: no cover - observability is optional for this layer
    _current_correlation_id = _no_correlation_id


def _correlation_id(headers: Any) -> str:
    return _current_correlation_id() or headers.get("x-correlation-id") or uuid.uuid4().hex


def _accept_quality(accept: str) -> dict[str, float]:
    quality: dict[str, float] = {}
    for part in accept.split(","):
        media, *parameters = part.split(";")
        media = media.strip().lower()
        q = 1.0
        for parameter in parameters:
            name, _, value = parameter.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        quality[media] = max(q, quality.get(media, 0.0))
    return quality


def negotiate(accept: str | None) -> str | None:
    """The response media type for this ``Accept`` header, or ``None`` (406)."""
    if not accept or not accept.strip():
        return JSON
    quality = _accept_quality(accept)
    gql = quality.get(GRAPHQL_RESPONSE_JSON, 0.0)
    json = quality.get(JSON, quality.get("application/*", quality.get("*/*", 0.0)))
    if gql > 0 and gql >= json:
        return GRAPHQL_RESPONSE_JSON
    if json > 0:
        return JSON
    return None


def _wants_html(accept: str | None) -> bool:
    return bool(accept) and "text/html" in _accept_quality(accept or "")


class CrosswalkGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI GraphQL app with Crosswalk's auth, limits and HTTP rules."""

    graphql_transport_ws_handler_class = CrosswalkTransportWSHandler

    def __init__(
        self,
        runtime: RuntimeLike,
        schema: Schema,
        *,
        clients: ClientsPolicy,
        persisted: PersistedOperations | None = None,
        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
        allowed_origins: Sequence[str] = ("*",),
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            allowed_origins=allowed_origins,
        )
        self.runtime = runtime
        self.clients = clients
        self.limits: QueryLimits = clients.limits
        self.authenticator = Authenticator(clients)
        self.deadline_seconds = deadline_seconds
        self.rates = RateLimiter()
        self.runner = OperationRunner(
            schema, limits=self.limits, persisted=persisted, rates=self.rates
        )
        self._ide_html = graphiql_page(clients)
        self.xref_cache = XRefCache()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.handle_http(scope, receive, send)
        elif scope["type"] == "lifespan":
            # served on its own (tests, benchmarks): nothing to start, the runtime is given
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        else:
            await super().__call__(scope, receive, send)

    # ------------------------------------------------------------ websocket (strawberry)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        client = _ANONYMOUS
        authorization = request.headers.get("authorization")
        if authorization:
            try:
                client = self.authenticator.authenticate(authorization)
            except CodedError:
                client = _ANONYMOUS
        return Context(
            runtime=self.runtime,
            client=client,
            correlation_id=_correlation_id(request.headers),
            # the connection's own context: each operation on it gets a fresh one, with
            # the HTTP deadline (gateway.graphql.websocket)
            deadline=current_time() + self.deadline_seconds,
            request=request,
            response=response,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate a websocket from ``connection_init`` (or the upgrade's header)."""
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        authorization = params.get("Authorization") or params.get("authorization")
        if isinstance(authorization, str):
            try:
                context.client = self.authenticator.authenticate(authorization)
            except CodedError as exc:
                raise ConnectionRejectionError({"message": exc.message}) from None
        if context.client is _ANONYMOUS:
            raise ConnectionRejectionError(
                {"message": "Send Authorization: Bearer <key> in connection_init's payload."}
            )
        return await super().on_ws_connect(context)

    # ------------------------------------------------------------ HTTP

    async def handle_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        headers = _header_map(scope)
        media = JSON
        try:
            method = request.method
            if method not in ("GET", "POST"):
                raise _HTTPFailure(
                    405,
                    CodedError(ErrorCode.VALIDATION_FAILED, "Use GET or POST for /graphql."),
                    {"Allow": "GET, POST"},
                )
            accept = headers.get("accept")
            if method == "GET" and _wants_html(accept) and "query" not in request.query_params:
                response = self._graphiql(request)
                await response(scope, receive, send)
                return
            negotiated = negotiate(accept)
            if negotiated is None:
                raise _HTTPFailure(
                    406,
                    CodedError(
                        ErrorCode.VALIDATION_FAILED,
                        f"Cannot answer with any type in Accept: {accept}; accept "
                        f"{GRAPHQL_RESPONSE_JSON} or {JSON}.",
                    ),
                )
            media = negotiated
            try:
                client = self.authenticator.authenticate(headers.get("authorization"))
            except CodedError as exc:
                raise _HTTPFailure(401, exc, {"WWW-Authenticate": "Bearer"}) from None
            try:
                self.rates.request(client)
            except OverBudget as throttled:
                raise _HTTPFailure(
                    429, throttled.error, {"Retry-After": str(throttled.retry_after)}
                ) from None
            if method == "GET":
                batch = [self._get_params(request)]
                is_batch = False
            else:
                batch, is_batch = await self._post_params(request, headers)
            context = Context(
                runtime=self.runtime,
                client=client,
                correlation_id=_correlation_id(headers),
                idempotency_key=headers.get("idempotency-key"),
                deadline=current_time() + self.deadline_seconds,
                request=request,
                extras={"xref_cache": self.xref_cache},
            )
            try:
                outcomes = [await self._run(params, client, method, context) for params in batch]
            finally:
                context.release()
        except _HTTPFailure as failure:
            await self._send(
                send, failure.status, media, {"errors": [failure.error.formatted]}, failure.headers
            )
            return
        retry_after = max((o.retry_after or 0 for o in outcomes), default=0)
        if is_batch:
            # one operation over the cost budget makes the whole batch a 429
            status = 429 if retry_after else 200
            extra = {"Retry-After": str(retry_after)} if retry_after else None
            await self._send(send, status, media, [o.body for o in outcomes], extra)
            return
        outcome = outcomes[0]
        status = outcome.status or (
            400 if outcome.request_error and media == GRAPHQL_RESPONSE_JSON else 200
        )
        extra = {"Allow": outcome.allow} if outcome.allow else {}
        if outcome.retry_after:
            extra["Retry-After"] = str(outcome.retry_after)
        await self._send(send, status, media, outcome.body, extra)

    async def _run(
        self, params: RequestParams, client: Client, method: str, context: Context
    ) -> Outcome:
        return await self.runner.run(params, client, context, transport=method)

    def _graphiql(self, request: Request) -> Response:
        authorization = request.headers.get("authorization")
        if authorization:
            try:
                allowed = self.authenticator.authenticate(authorization).graphiql
            except CodedError:
                allowed = False
        else:
            # a browser cannot send the key with the page request; the page itself holds
            # nothing secret and every query it sends is authenticated as usual
            allowed = any(c.graphiql for c in self.clients.clients.values()) or any(
                i.graphiql for i in self.clients.issuers.values()
            )
        if not allowed:
            return Response("GraphiQL is not enabled for this client.", status_code=403)
        return Response(self._ide_html, media_type="text/html")

    @staticmethod
    def _bad_request(message: str) -> _HTTPFailure:
        return _HTTPFailure(400, CodedError(ErrorCode.VALIDATION_FAILED, message))

    def _get_params(self, request: Request) -> RequestParams:
        query_params = request.query_params
        variables = extensions = None
        if "variables" in query_params:
            variables = self._json_param(query_params["variables"], "variables")
        if "extensions" in query_params:
            extensions = self._json_param(query_params["extensions"], "extensions")
        return self._params(
            {
                "query": query_params.get("query"),
                "operationName": query_params.get("operationName"),
                "variables": variables,
                "extensions": extensions,
            }
        )

    def _json_param(self, raw: str, name: str) -> Any:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise self._bad_request(f"The '{name}' parameter is not valid JSON.") from None

    async def _post_params(
        self, request: Request, headers: dict[str, str]
    ) -> tuple[list[RequestParams], bool]:
        content_type = headers.get("content-type", "")
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type != JSON:
            raise _HTTPFailure(
                415,
                CodedError(
                    ErrorCode.VALIDATION_FAILED,
                    f"POST /graphql needs Content-Type: {JSON}, got {content_type or 'none'}.",
                ),
            )
        body = await self._read_body(request, headers)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise self._bad_request("The request body is not valid JSON.") from None
        if isinstance(payload, list):
            if not payload:
                raise self._bad_request("An empty batch: send at least one operation.")
            if len(payload) > self.limits.max_batch:
                raise _HTTPFailure(
                    400,
                    CodedError(
                        ErrorCode.QUERY_TOO_COMPLEX,
                        f"A batch of {len(payload)} operations exceeds the limit of "
                        f"{self.limits.max_batch}.",
                        extensions={"limit": "batch", "max": self.limits.max_batch},
                    ),
                )
            return [self._params(item) for item in payload], True
        return [self._params(payload)], False

    async def _read_body(self, request: Request, headers: dict[str, str]) -> bytes:
        limit = self.limits.max_body_bytes
        too_large = _HTTPFailure(
            413,
            CodedError(
                ErrorCode.QUERY_TOO_COMPLEX,
                f"The request body exceeds {limit} bytes; send a smaller query or use a "
                "persisted operation.",
                extensions={"limit": "body", "max": limit},
            ),
        )
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        seconds = self.limits.body_seconds
        with anyio.move_on_after(seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
            return b"".join(chunks)
        raise _HTTPFailure(
            408,
            CodedError(
                ErrorCode.VALIDATION_FAILED,
                f"The request body did not arrive within {seconds} s; send it at once.",
                extensions={"limit": "body_seconds", "max": seconds},
            ),
            {"Connection": "close"},
        )

    def _params(self, raw: Any) -> RequestParams:
        if not isinstance(raw, dict):
            raise self._bad_request("Each request must be a JSON object with a 'query'.")
        query = raw.get("query")
        operation_name = raw.get("operationName")
        variables = raw.get("variables")
        extensions = raw.get("extensions")
        if query is not None and not isinstance(query, str):
            raise self._bad_request("'query' must be a string.")
        if operation_name is not None and not isinstance(operation_name, str):
            raise self._bad_request("'operationName' must be a string.")
        if variables is not None and not isinstance(variables, dict):
            raise self._bad_request("'variables' must be a JSON object.")
        if extensions is not None and not isinstance(extensions, dict):
            raise self._bad_request("'extensions' must be a JSON object.")
        return RequestParams(query, operation_name, variables, extensions)

    @staticmethod
    async def _send(
        send: Send,
        status: int,
        media: str,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        try:
            content = orjson.dumps(body)
        except TypeError:  # an integer past 64 bits in an answer: the slow encoder copes
            content = json.dumps(body, default=str, separators=(",", ":")).encode()
        raw_headers = [
            (b"content-type", f"{media}; charset=utf-8".encode()),
            (b"content-length", str(len(content)).encode()),
        ]
        for name, value in (headers or {}).items():
            raw_headers.append((name.lower().encode(), value.encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": content})


def create_graphql_app(
    runtime: RuntimeLike,
    *,
    schema: Schema | None = None,
    clients: ClientsPolicy | None = None,
    persisted: PersistedOperations | None = None,
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
) -> CrosswalkGraphQL:
    """The ASGI app for ``/graphql``: clients from ``runtime.policies.clients`` by default,
    persisted operations safelisted from ``<policies>/persisted/*.graphql``."""
    if schema is None:
        from gateway.graphql.schema import get_schema

        schema = get_schema()
    if clients is None:
        clients = runtime.policies.clients
    if persisted is None:
        policies_dir = getattr(runtime.settings, "policies_dir", None)
        persisted = (
            PersistedOperations.from_folder(policies_dir / "persisted")
            if policies_dir is not None
            else PersistedOperations()
        )
    return CrosswalkGraphQL(
        runtime,
        schema,
        clients=clients,
        persisted=persisted,
        deadline_seconds=deadline_seconds,
    )
