"""Optional OpenTelemetry spans (the ``crosswalk[otel]`` extra): off unless the gateway
configures a tracer (``gateway.observability.tracing``), and then free: ``span()`` hands
back one shared no-op context manager, with no allocation per call.

    with span("actor.erp GetCustomers", {"crosswalk.system": "erp"}):
        ...

Spans nest through OpenTelemetry's own context (contextvars), so a GraphQL operation's
span is the parent of its actors' spans, and those of their HTTP calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

__all__ = ["disable", "enable", "enabled", "span"]

_NOOP: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
_tracer: Any = None


def enable(tracer: Any) -> None:
    """Send spans to ``tracer`` (an ``opentelemetry.trace.Tracer``)."""
    global _tracer
    _tracer = tracer


def disable() -> None:
    global _tracer
    _tracer = None


def enabled() -> bool:
    return _tracer is not None


def span(
    name: str, attributes: Mapping[str, str | int | float | bool] | None = None
) -> contextlib.AbstractContextManager[Any]:
    """A span around a block (a shared no-op when tracing is off)."""
    tracer = _tracer
    if tracer is None:
        return _NOOP
    manager: contextlib.AbstractContextManager[Any] = tracer.start_as_current_span(
        name, attributes=dict(attributes or {})
    )
    return manager
