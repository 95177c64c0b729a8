"""Correlation ids and W3C trace context through every hop.

Each request gets a correlation id: the caller's ``X-Correlation-ID`` when it is a sane
token (at most 128 characters of ``[A-Za-z0-9._:-]``), else a new one. A valid W3C
``traceparent`` is honoured: its trace id is kept and a new span id is made for this hop;
without one, a new trace starts. Both are echoed on the response and held in context
variables, so logs, audit entries, outbox messages and outgoing calls can carry them.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors.context import CallContext, reset_call, set_call, trace_id_for

__all__ = [
    "CorrelationMiddleware",
    "TraceContext",
    "current_correlation_id",
    "current_trace",
    "new_correlation_id",
    "working_for",
]

_CORRELATION: ContextVar[str | None] = ContextVar("crosswalk_correlation_id", default=None)
_TRACE: ContextVar[TraceContext | None] = ContextVar("crosswalk_trace", default=None)
_SANE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


class TraceContext:
    """One hop of a W3C trace: the trace id, this hop's span id, and the caller's span."""

    __slots__ = ("flags", "parent_id", "span_id", "trace_id")

    def __init__(self, trace_id: str, span_id: str, parent_id: str | None, flags: str) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.flags = flags

    @classmethod
    def from_header(cls, header: str | None, *, correlation_id: str | None = None) -> TraceContext:
        """The caller's trace, continued; else a new one (derived from the correlation id
        when given, so the outbox deliveries it causes continue the same trace)."""
        match = _TRACEPARENT.match(header.strip().lower()) if header else None
        if match and set(match[1]) != {"0"} and set(match[2]) != {"0"}:
            return cls(match[1], secrets.token_hex(8), match[2], match[3])
        trace_id = trace_id_for(correlation_id) if correlation_id else secrets.token_hex(16)
        return cls(trace_id, secrets.token_hex(8), None, "01")

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def current_correlation_id() -> str | None:
    """The correlation id of the request (or outbox delivery) being handled, if any."""
    return _CORRELATION.get()


def current_trace() -> TraceContext | None:
    return _TRACE.get()


@contextmanager
def working_for(process: str) -> Iterator[str]:
    """Run one round of a background process (``discovery``, ``catch-up``) under a new
    correlation id, with ``crosswalk:<process>`` as the actor of the vendor calls it
    makes: the audit trail then says who made them and groups each round. Yields the id."""
    correlation_id = f"{process}-{new_correlation_id()}"
    token = set_call(
        CallContext(correlation_id, trace_id_for(correlation_id), actor=f"crosswalk:{process}")
    )
    try:
        yield correlation_id
    finally:
        reset_call(token)


class CorrelationMiddleware:
    """Pure ASGI middleware: accept or make the ids, set the context, echo the headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given: str | None = None
        traceparent: str | None = None
        for name, value in scope["headers"]:
            if name == b"x-correlation-id":
                given = value.decode("latin-1")
            elif name == b"traceparent":
                traceparent = value.decode("latin-1")
        correlation_id = given if given and _SANE_ID.match(given) else new_correlation_id()
        trace = TraceContext.from_header(traceparent, correlation_id=correlation_id)
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        scope["state"]["trace"] = trace
        cid_token = _CORRELATION.set(correlation_id)
        trace_token = _TRACE.set(trace)
        # every vendor call this request causes carries both (actors.context)
        call_token = set_call(CallContext(correlation_id, trace.trace_id, trace.flags))

        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Correlation-ID"] = correlation_id
                headers["traceparent"] = trace.traceparent
            await send(message)

        try:
            await self.app(scope, receive, send_with_ids)
        finally:
            _CORRELATION.reset(cid_token)
            _TRACE.reset(trace_token)
            reset_call(call_token)
