"""The gateway's HTTP surface (a contract: the README's "What runs where" lists it).

``/graphql`` (GraphQL over HTTP, GraphiQL, graphql-transport-ws), ``/healthz`` (the
process is alive), ``/readyz`` (the runtime is open: store and actors), ``/metrics``
(Prometheus), ``/slo`` (the objectives of ``policies/slo.toml`` now, with burn rates;
same access rule as ``/metrics``), ``/console`` (the operations console). Every answer
carries ``X-Correlation-ID`` and ``traceparent``.

The ops endpoints tell an outsider a lot (queue depths, breakers, traffic), so by default
(``[ops] access = "ops"`` in ``policies/clients.toml``) ``/metrics`` needs
``Authorization: Bearer <key>`` of a client with the ``ops`` scope (401 without
credentials, 403 without the scope), and ``/readyz`` answers a bare ``{"status": ...}``
with 200 or 503 to anyone (load balancers) and its per-system details only to ops.
``access = "open"`` opens both; ``port = N`` also serves both without auth on a separate
port (``ops_app``, started by ``crosswalk serve``) that only a monitoring network reaches.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from actors import ConnectorFactory, Systems
from canonical import System
from gateway.console import console_routes
from gateway.governance.clients import ClientsPolicy
from gateway.governance.policies import Policies
from gateway.graphql.auth import Authenticator
from gateway.graphql.errors import CodedError, ErrorCode
from gateway.graphql.ide import asset_response
from gateway.observability.correlation import CorrelationMiddleware
from gateway.observability.metrics import build_registry
from gateway.observability.slo import WINDOWS, CallCounters, evaluate
from gateway.readmodel.feeds import Feeds
from gateway.readmodel.model import ReadModel
from gateway.readmodel.quota import Quota
from gateway.runtime import Runtime, open_runtime
from gateway.settings import Settings
from gateway.store import Store
from gateway.webhooks import webhook_endpoint

__all__ = ["OpsRoutes", "create_app"]


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


class OpsRoutes:
    """``/metrics`` and ``/readyz`` for one runtime, with the ops access policy."""

    def __init__(self, clients: ClientsPolicy, runtime: Callable[[], Runtime | None]) -> None:
        self.authenticator = Authenticator(clients)
        self.open = clients.ops.access == "open"
        #: the separate port (and its address) to serve ``app()`` on, if any
        self.port = clients.ops.port
        self.host = clients.ops.host
        self._runtime = runtime
        self.registry, self.gateway_metrics = build_registry(runtime)

    def refusal(self, request: Request) -> Response | None:
        """None if the caller may see ops details, else the 401/403 answer."""
        if self.open:
            return None
        authorization = request.headers.get("authorization")
        try:
            client = self.authenticator.authenticate(authorization)
        except CodedError as exc:
            return _error(401, exc, {"WWW-Authenticate": "Bearer"})
        if not client.has_scope("ops"):
            return _error(
                403,
                CodedError(
                    ErrorCode.FORBIDDEN,
                    f"Client '{client.id}' lacks the scope 'ops' that {request.url.path} "
                    "needs; use an operator's key, or see [ops] in policies/clients.toml.",
                    extensions={"scope": "ops"},
                ),
            )
        return None

    async def metrics(self, request: Request, *, authenticated: bool = True) -> Response:
        refusal = self.refusal(request) if authenticated else None
        if refusal is not None:
            return refusal
        await self.gateway_metrics.refresh(self._runtime())
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    async def slo(self, request: Request) -> Response:
        """Every objective of ``policies/slo.toml`` now (``gateway.observability.slo``)."""
        refusal = self.refusal(request)
        if refusal is not None:
            return refusal
        current = self._runtime()
        if current is None or not current.ready:
            return _json({"status": "starting", "objectives": []}, status=503)
        lags = {system: _lag(current, system) for system in System}
        statuses = await evaluate(current.policies.slo, current.store, current.slo, lags)
        return _json(
            {
                "ok": all(s.ok for s in statuses),
                "windows": list(WINDOWS),
                "objectives": [s.to_json() for s in statuses],
            }
        )

    async def readyz(self, request: Request, *, authenticated: bool = True) -> Response:
        current = self._runtime()
        ready = current is not None and current.ready
        status = 200 if ready else 503
        body: dict[str, object] = {"status": "ready" if ready else "starting"}
        details = not authenticated or (
            request.headers.get("authorization") is not None and self.refusal(request) is None
        )
        if ready and (details or self.open) and current is not None:
            body["systems"] = [
                {
                    "system": s.system,
                    "healthy": s.healthy,
                    "breaker": s.breaker,
                    "queue_depth": s.queue_depth,
                    **_sync(current, s.system),
                }
                for s in current.systems.states()
            ]
        return _json(body, status=status)

    def app(self) -> Starlette:
        """Both endpoints without auth, for a separate port (``[ops] port``)."""

        async def metrics(request: Request) -> Response:
            return await self.metrics(request, authenticated=False)

        async def readyz(request: Request) -> Response:
            return await self.readyz(request, authenticated=False)

        return Starlette(
            routes=[
                Route("/metrics", metrics, methods=["GET"]),
                Route("/readyz", readyz, methods=["GET"]),
            ]
        )


def _lag(runtime: Runtime, system: System) -> float | None:
    """Seconds since the read model's copy of ``system`` was last complete."""
    model = getattr(runtime, "read_model", None)
    return None if model is None else model.lag(system)


def _sync(runtime: Runtime, system: str) -> dict[str, object]:
    """The read model's lag for /readyz: a lagging feed is reported, never "not ready"
    (reads still answer from the read model, marked stale past their budget)."""
    if getattr(runtime, "read_model", None) is None:
        return {}
    lag = _lag(runtime, System(system))
    lag = None if lag is None else round(lag, 3)
    interval = runtime.policies.readmodel.catch_up_interval
    return {
        "read_model": {
            "loaded": lag is not None,
            "lag_seconds": lag,
            "lagging": lag is None or lag > 2 * interval,
        }
    }


def _error(status: int, error: CodedError, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps({"errors": [error.formatted]}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


class _LateRuntime:
    """The runtime as the GraphQL app sees it: settings and policies at once, the store and
    actors once the lifespan has opened them."""

    def __init__(
        self, settings: Settings, policies: Policies, runtime: Callable[[], Runtime]
    ) -> None:
        self.settings = settings
        self.policies = policies
        self._runtime = runtime

    @property
    def store(self) -> Store:
        return self._runtime().store

    @property
    def systems(self) -> Systems:
        return self._runtime().systems

    @property
    def read_model(self) -> ReadModel | None:
        return self._runtime().read_model

    @property
    def quota(self) -> Quota | None:
        return self._runtime().quota

    @property
    def feeds(self) -> Feeds | None:
        return self._runtime().feeds

    @property
    def slo(self) -> CallCounters | None:
        return self._runtime().slo


def create_app(
    settings: Settings,
    *,
    connectors: Mapping[System, ConnectorFactory] | None = None,
) -> Starlette:
    """The gateway app; its lifespan opens the runtime (policies, store, actors)."""
    from gateway.governance.policies import load_policies
    from gateway.graphql.app import create_graphql_app

    # validate policies now, so a broken file stops start-up before anything listens
    policies = load_policies(settings.policies_dir, profile=settings.profile)
    holder: dict[str, Runtime] = {}

    def runtime() -> Runtime:
        try:
            return holder["runtime"]
        except KeyError:
            raise RuntimeError("The gateway runtime is not open (lifespan not started).") from None

    ops = OpsRoutes(policies.clients, lambda: holder.get("runtime"))
    graphql = create_graphql_app(_LateRuntime(settings, policies, runtime))
    graphql.runner.observe = ops.gateway_metrics.graphql
    receive_webhook = webhook_endpoint(policies.webhooks, lambda: runtime().store)

    async def webhooks(request: Request) -> Response:
        response = await receive_webhook(request)
        current = holder.get("runtime")
        if current is not None and current.feeds is not None:
            if response.status_code == 200:
                current.feeds.events_arrived()
            elif response.status_code == 503 and request.path_params.get("system") in {
                str(s) for s in System
            }:
                # we refused an event (the store was busy): its change is only in the feed
                current.feeds.nudge(System(request.path_params["system"]))
        ops.gateway_metrics.webhook(request.path_params.get("system", ""), response.status_code)
        return response

    async def healthz(request: Request) -> Response:
        return _json({"status": "ok"})

    async def readyz(request: Request) -> Response:
        return await ops.readyz(request)

    async def metrics(request: Request) -> Response:
        return await ops.metrics(request)

    async def slo(request: Request) -> Response:
        return await ops.slo(request)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_runtime(settings, connectors=connectors, policies=policies) as rt:
            holder["runtime"] = rt
            try:
                yield
            finally:
                holder.pop("runtime", None)

    async def graphiql_asset(request: Request) -> Response:
        return asset_response(request.path_params["name"])

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/slo", slo, methods=["GET"]),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route("/graphql/assets/{name}", graphiql_asset, methods=["GET"]),
        Route("/webhooks/{system}", webhooks, methods=["POST"]),
        *console_routes(settings, policies, ops.refusal),
    ]
    app = Starlette(
        routes=routes, middleware=[Middleware(CorrelationMiddleware)], lifespan=lifespan
    )
    # the separate ops port's app (crosswalk serve starts it when [ops] port is set)
    app.state.ops = ops
    return app
