"""The gateway's HTTP surface (contract: DESIGN.md, "HTTP").

``/graphql`` (GraphQL over HTTP, GraphiQL, graphql-transport-ws), ``/healthz`` (the
process is alive), ``/readyz`` (the runtime is open: store and actors; per-system state
in the body), ``/metrics`` (Prometheus). Every answer carries ``X-Correlation-ID`` and
``traceparent``.
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

from actors.systems import ConnectorFactory, Systems
from gateway.canonical import System
from gateway.governance.policies import Policies
from gateway.observability.correlation import CorrelationMiddleware
from gateway.observability.metrics import build_registry
from gateway.runtime import Runtime, open_runtime
from gateway.settings import Settings
from gateway.store import Store
from gateway.webhooks import webhook_endpoint

__all__ = ["create_app"]


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


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


def create_app(
    settings: Settings,
    *,
    connectors: Mapping[System, ConnectorFactory] | None = None,
) -> Starlette:
    """The gateway app; its lifespan opens the runtime (policies, store, actors)."""
    from gateway.governance.policies import load_policies
    from gateway.graphql.app import create_graphql_app

    # validate policies now, so a broken file stops start-up before anything listens
    policies = load_policies(settings.policies_dir)
    holder: dict[str, Runtime] = {}

    def runtime() -> Runtime:
        try:
            return holder["runtime"]
        except KeyError:
            raise RuntimeError("The gateway runtime is not open (lifespan not started).") from None

    graphql = create_graphql_app(_LateRuntime(settings, policies, runtime))

    async def healthz(request: Request) -> Response:
        return _json({"status": "ok"})

    async def readyz(request: Request) -> Response:
        current = holder.get("runtime")
        if current is None or not current.ready:
            return _json({"status": "starting"}, status=503)
        systems = [
            {
                "system": s.system,
                "healthy": s.healthy,
                "breaker": s.breaker,
                "queue_depth": s.queue_depth,
            }
            for s in current.systems.states()
        ]
        return _json({"status": "ready", "systems": systems})

    registry = build_registry(lambda: holder.get("runtime"))

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_runtime(settings, connectors=connectors, policies=policies) as rt:
            holder["runtime"] = rt
            try:
                yield
            finally:
                holder.pop("runtime", None)

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route(
            "/webhooks/{system}",
            webhook_endpoint(policies.webhooks, lambda: runtime().store),
            methods=["POST"],
        ),
    ]
    return Starlette(
        routes=routes, middleware=[Middleware(CorrelationMiddleware)], lifespan=lifespan
    )
