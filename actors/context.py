"""The call context every vendor call carries: correlation id, W3C trace parent, actor.

The gateway sets it where work begins (an HTTP request, an outbox delivery, a webhook's
processing); actors carry it with each message into whichever task handles it, and the
HTTP connector sends it on every vendor call as ``X-Correlation-ID`` (each vendor echoes
or logs it: SAP reads ``X-CorrelationID`` too, so both are sent) and ``traceparent``.
The context also names who the work is for (``actor``: a client id, or the Crosswalk
process that started it), so the audit trail can say who caused each vendor call; and
``current_attempt`` says which try of an actor's retry loop a call is.
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
    "current_attempt",
    "current_call",
    "outgoing_headers",
    "reset_attempt",
    "reset_call",
    "set_attempt",
    "set_call",
    "trace_id_for",
]


@dataclass(frozen=True, slots=True)
class CallContext:
    correlation_id: str
    #: the W3C trace id (32 hex digits) this work belongs to, if one is known
    trace_id: str | None = None
    flags: str = "01"
    #: who the work is for: a client id, or a Crosswalk process ("crosswalk:discovery")
    actor: str | None = None


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


_ATTEMPT: ContextVar[int] = ContextVar("crosswalk_attempt", default=1)


def current_attempt() -> int:
    """Which try of its actor's retry loop the call in progress is (1 for the first)."""
    return _ATTEMPT.get()


def set_attempt(attempt: int) -> Token[int]:
    return _ATTEMPT.set(attempt)


def reset_attempt(token: Token[int]) -> None:
    _ATTEMPT.reset(token)


def outgoing_headers(call: CallContext | None) -> dict[str, str]:
    """The headers one vendor call carries: a new span of the trace for each call."""
    if call is None:
        return {}
    headers = {"X-Correlation-ID": call.correlation_id, "X-CorrelationID": call.correlation_id}
    if call.trace_id is not None:
        headers["traceparent"] = f"00-{call.trace_id}-{secrets.token_hex(8)}-{call.flags}"
    return headers
