"""The call context every vendor call carries: correlation id and W3C trace parent.

The gateway sets it where work begins (an HTTP request, an outbox delivery, a webhook's
processing); actors carry it with each message into whichever task handles it, and the
HTTP connector sends it on every vendor call as ``X-Correlation-ID`` (each vendor echoes
or logs it: SAP reads ``X-CorrelationID`` too, so both are sent) and ``traceparent``.
It lives here, in the actors' layer, so the layer above can set it and the layer that
makes the calls can read it without importing the gateway.
"""

from __future__ import annotations

import hashlib
import secrets
from contextvars import ContextVar, Token
from dataclasses import dataclass

__all__ = [
    "CallContext",
    "current_call",
    "outgoing_headers",
    "reset_call",
    "set_call",
    "trace_id_for",
]


@dataclass(frozen=True, slots=True)
class CallContext:
    correlation_id: str
    #: the W3C trace id (32 hex digits) this work belongs to, if one is known
    trace_id: str | None = None
    flags: str = "01"


def trace_id_for(correlation_id: str) -> str:
    """The trace id work under ``correlation_id`` uses when no caller gave one: derived
    from it, so a mutation's later outbox deliveries continue the request's trace."""
    return hashlib.sha256(correlation_id.encode()).hexdigest()[:32]


_CALL: ContextVar[CallContext | None] = ContextVar("crosswalk_call", default=None)


def current_call() -> CallContext | None:
    return _CALL.get()


def set_call(call: CallContext | None) -> Token[CallContext | None]:
    return _CALL.set(call)


def reset_call(token: Token[CallContext | None]) -> None:
    _CALL.reset(token)


def outgoing_headers(call: CallContext | None) -> dict[str, str]:
    """The headers one vendor call carries: a new span of the trace for each call."""
    if call is None:
        return {}
    headers = {"X-Correlation-ID": call.correlation_id, "X-CorrelationID": call.correlation_id}
    if call.trace_id is not None:
        headers["traceparent"] = f"00-{call.trace_id}-{secrets.token_hex(8)}-{call.flags}"
    return headers
