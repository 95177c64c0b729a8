"""What each vendor HTTP call looked like, for whoever keeps an audit trail of them.

``HttpConnector.request`` reports every call it makes, answered or not, to its
``observe`` hook (``Systems(..., on_call=...)`` installs one for all four connectors) as a
``VendorCall``. The hook runs inline on the event loop, once per call, so it must be
cheap and must not block or raise: the gateway's audit writer only appends the call to a
bounded queue. The actors' layer knows nothing of the store the calls end up in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CallObserver", "VendorCall", "outcome_of"]


@dataclass(frozen=True, slots=True)
class VendorCall:
    """One HTTP call to a vendor system and how it ended."""

    system: str
    method: str
    #: the path without its query string (ids may appear in it)
    path: str
    #: the HTTP status; ``None`` when no answer came (timeout, refused connection)
    status: int | None
    latency_ms: float
    #: which try of the actor's retry loop this was (1 for the first)
    attempt: int
    #: "ok", "client_error", "throttled", "server_error", "timeout", "unavailable",
    #: "too_large" or "cancelled"
    outcome: str
    #: wall-clock time the call started, in seconds since the epoch
    at: float
    correlation_id: str | None = None
    #: the client id or Crosswalk process the call was made for, when known
    actor: str | None = None


CallObserver = Callable[[VendorCall], None]


def outcome_of(status: int) -> str:
    """The outcome of a call answered with ``status``."""
    if status < 400:
        return "ok"
    if status == 429:
        return "throttled"
    return "client_error" if status < 500 else "server_error"
