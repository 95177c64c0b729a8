"""The support sandbox: a stand-in for the Zendesk Support API v2 under ``/api/v2``.

    app = create_app(SandboxConfig.for_system("support"))

Speaks a subset of the Zendesk Support API v2: tickets,
organizations (with ``create_or_update``, ``show_many``, ``search``, ``autocomplete``),
users, SLA policies; cursor and offset pagination; incremental exports of tickets
(cursor-based) and organizations (time-based) with their own rate limit; Basic
``agent@example.com/token:sandbox`` or Bearer ``sandbox``; ``X-Rate-Limit`` headers and
429 with ``Retry-After``; ``Idempotency-Key`` on ``POST /tickets``; signed
``zen:event-type:*`` webhooks. Paths may end in ``.json`` as Zendesk's own clients write
them.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.app import SandboxConfig, SandboxState, build_app

from . import incremental, organizations, tickets, users
from .api import Api
from .wire import RateLimiter, SupportDialect, json_response, make_signer
from .world import seed_world

__all__ = ["DEFAULT_EXPORT_RATE_LIMIT", "DEFAULT_RATE_LIMIT", "create_app"]

#: requests per minute, as on Zendesk's Enterprise plan
DEFAULT_RATE_LIMIT = 700
#: requests per minute to the incremental exports, a budget of their own (Zendesk: 10)
DEFAULT_EXPORT_RATE_LIMIT = 10

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class _JsonSuffix:
    """Serve ``/api/v2/tickets/1.json`` as ``/api/v2/tickets/1``, as Zendesk does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith(".json"):
            scope = {**scope, "path": scope["path"][: -len(".json")]}
        await self.app(scope, receive, send)


def create_app(
    config: SandboxConfig,
    *,
    rate_limit: int = DEFAULT_RATE_LIMIT,
    export_rate_limit: int = DEFAULT_EXPORT_RATE_LIMIT,
) -> Starlette:
    """The support sandbox app; ``rate_limit`` is the per-minute budget before 429s,
    ``export_rate_limit`` the incremental exports' own."""
    limiter = RateLimiter(rate_limit)
    exports = RateLimiter(export_rate_limit)
    api = Api(limiter=limiter, dialect=SupportDialect(limiter))

    async def invalid_endpoint(api: Api, request: Request, state: SandboxState) -> Response:
        return json_response({"error": "InvalidEndpoint", "description": "Not found"}, 404)

    routes: list[BaseRoute] = [
        api.route(path, handler, method)
        for table in (tickets.ROUTES, organizations.ROUTES, users.ROUTES)
        for path, handler, method in table
    ]
    routes += [
        api.route(path, handler, method, limiter=exports)
        for path, handler, method in incremental.ROUTES
    ]
    fallback = api.route("/{path:path}", invalid_endpoint, "GET")
    routes.append(Route("/{path:path}", fallback.endpoint, methods=_METHODS))

    async def seed(state: SandboxState) -> None:
        limiter.refill()
        exports.refill()
        await seed_world(state)

    app = build_app(
        config,
        routes=routes,
        dialect=api.dialect,
        seed=seed,
        signer=make_signer(config.webhook_secret),
    )
    app.add_middleware(_JsonSuffix)
    return app
