"""The per-request GraphQL context: who is asking, on whose behalf, and with what deadline.

Every resolver reaches it as ``info.context``::

    ctx: Context = info.context
    require_scope(info, "invoice:read")          # FORBIDDEN on this field if missing
    ctx.runtime.systems[System.BILLING].ask(..., priority=Priority.INTERACTIVE,
                                            deadline=ctx.deadline)
    ctx.loaders.invoices.load(("billing", "cus_..."))

One ``Context`` is built per HTTP request (or websocket operation); its DataLoaders live
exactly as long, so batching and caching never leak between clients.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from gateway.governance.clients import Client
from gateway.graphql.errors import CodedError, ErrorCode
from gateway.graphql.loaders import Loaders

if TYPE_CHECKING:
    from strawberry.types import Info

__all__ = [
    "DEFAULT_DEADLINE_SECONDS",
    "Context",
    "RuntimeLike",
    "current_time",
    "require_scope",
]

#: how long a read request may take end to end, unless the runtime's settings say otherwise
DEFAULT_DEADLINE_SECONDS = 5.0


def current_time() -> float:
    """``anyio.current_time()``, read straight from the loop on asyncio (no backend lookup:
    a request reads the clock several times)."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:  # another backend
        return anyio.current_time()


class RuntimeLike(Protocol):
    """What the GraphQL layer needs from ``gateway.runtime.Runtime``."""

    @property
    def settings(self) -> Any: ...

    @property
    def policies(self) -> Any: ...

    @property
    def store(self) -> Any: ...

    @property
    def systems(self) -> Any: ...


@dataclass(eq=False, slots=False)
class Context:
    """Everything a resolver may use about the current request.

    ``client`` is the authenticated client (authentication happens before execution, so it
    is never missing during a query). ``deadline`` is an ``anyio.current_time()`` value:
    every upstream ask of this request carries it, so a slow system cannot hold the
    request past its budget. ``request`` / ``response`` are the Starlette objects when the
    request came over HTTP (``None`` in tests that execute directly).
    """

    runtime: RuntimeLike
    client: Client
    correlation_id: str
    idempotency_key: str | None = None
    deadline: float = field(default_factory=lambda: current_time() + DEFAULT_DEADLINE_SECONDS)
    request: Any = None
    response: Any = None
    #: the graphql-transport-ws ``connection_init`` payload (websocket requests only)
    connection_params: Any = None
    #: free-form per-request values for other resolvers (e.g. the write path's bookkeeping)
    extras: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def loaders(self) -> Loaders:
        """This request's DataLoaders, built on first use."""
        return Loaders(self)

    def release(self) -> None:
        """Free this request's DataLoaders once it has been answered (see Loaders.release)."""
        loaders: Loaders | None = self.__dict__.pop("loaders", None)
        if loaders is not None:
            loaders.release()

    @property
    def remaining(self) -> float:
        """Seconds left before the request's deadline (never negative)."""
        return max(0.0, self.deadline - current_time())

    def has_scope(self, scope: str) -> bool:
        return self.client.has_scope(scope)

    # Starlette-style access used by strawberry's own helpers (e.g. websocket handlers)
    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


def require_scope(info: Info[Any, Any] | Any, scope: str) -> Context:
    """Return the request's ``Context`` if its client holds ``scope``; else raise FORBIDDEN.

    Raised from a resolver, the error nulls only that field: the rest of the query is
    still answered.
    """
    context: Context = info.context
    if not context.client.has_scope(scope):
        raise CodedError(
            ErrorCode.FORBIDDEN,
            f"Client '{context.client.id}' lacks the scope '{scope}' this field needs; "
            f"grant it in policies/clients.toml.",
            extensions={"scope": scope},
        )
    return context
