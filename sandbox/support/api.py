"""The wrapper every support endpoint runs in: auth, the rate limit, one write lock, and
Zendesk's rate headers on every answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.app import SandboxState, state_of

from .wire import RateLimiter, SupportDialect, ZendeskError, authenticated, unauthorized

__all__ = ["Api", "Handler", "base_url"]

Handler = Callable[["Api", Request, SandboxState], Awaitable[Response]]

PREFIX = "/api/v2"


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _write_lock() -> anyio.Lock:
    return anyio.Lock(fast_acquire=True)  # no loop round trip when free


@dataclass(slots=True)
class Api:
    """Shared by the handlers of one app: its limiter, its dialect and its write lock."""

    limiter: RateLimiter
    dialect: SupportDialect
    #: writes validate against the store and then change it: one at a time, so two
    #: concurrent creates cannot both pass a uniqueness check or an idempotency lookup
    write_lock: anyio.Lock = field(default_factory=_write_lock)

    def route(
        self, path: str, handler: Handler, method: str, *, limiter: RateLimiter | None = None
    ) -> Route:
        """``limiter``: a budget of the route's own (incremental exports) instead of the
        account's."""
        budget = limiter or self.limiter
        dialect = self.dialect if limiter is None else SupportDialect(limiter)

        async def endpoint(request: Request) -> Response:
            if not authenticated(request.headers.get("authorization")):
                response = unauthorized()
            elif not budget.take():
                return dialect.throttle_response()
            else:
                try:
                    response = await handler(self, request, state_of(request))
                except ZendeskError as exc:
                    response = exc.response()
            response.headers.update(budget.headers())
            return response

        return Route(PREFIX + path, endpoint, methods=[method], name=f"{method} {path}")
