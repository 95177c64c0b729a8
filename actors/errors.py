"""Errors raised by system actors and their connectors.

The tree, from the most general::

    CrosswalkSystemError            anything a back-office system did or failed to do
    +-- SystemUnavailable           unreachable, 5xx, outage, or its breaker is open
    |   +-- BreakerOpen             refused locally: the breaker is open, no call was made
    +-- SystemTimeout               no answer before the deadline (also a TimeoutError)
    +-- Throttled                   the vendor's rate-limit answer, or shed from a full mailbox
    +-- Rejected                    the system refused the request (4xx): retrying will not help
    |   +-- NotFound                the record does not exist
    |   +-- Conflict                a duplicate or a concurrency (ETag) conflict
    +-- MalformedResponse           the answer could not be read (bad JSON, missing fields)
    |   +-- LimitExceeded           the answer went past a bound in policy (bytes, pages)
    +-- ActorStopped                the actor stopped before handling the message

Each carries ``system`` (``"erp"``, ``"billing"``, ``"crm"``, ``"support"``) and a ``code``
that is the GraphQL ``extensions.code`` the experience API reports for it. ``retryable``
says whether the same call may succeed later; ``retry_after`` is the vendor's own hint in
seconds, when it gave one.

Below the tree: the one table from an HTTP status to the class it means
(``error_for_status``) and the one ``Retry-After`` parser (``retry_after_seconds``), used
by all four connectors. Each vendor's own exceptions to the table (Salesforce's 403
``REQUEST_LIMIT_EXCEEDED`` is a throttle, SAP's 503 with ``Retry-After`` too) stay in that
vendor's ``errors`` module (``actors/erp/errors.py`` and its siblings).
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping
from datetime import UTC, datetime

__all__ = [
    "STATUS_ERRORS",
    "ActorStopped",
    "BreakerOpen",
    "Conflict",
    "CrosswalkSystemError",
    "LimitExceeded",
    "MalformedResponse",
    "NotFound",
    "Rejected",
    "SystemTimeout",
    "SystemUnavailable",
    "Throttled",
    "error_for_status",
    "refused_credentials",
    "retry_after_seconds",
    "throttled",
]


class CrosswalkSystemError(Exception):
    """Base of every error about one back-office system."""

    code = "SYSTEM_UNAVAILABLE"
    retryable = True
    #: whether this outcome should count as a failure for the circuit breaker
    counts_as_failure = True

    def __init__(
        self,
        system: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(f"{system}: {message}")
        self.system = system
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.details = details or {}


class SystemUnavailable(CrosswalkSystemError):
    """The system could not be reached or answered with a server error."""


class BreakerOpen(SystemUnavailable):
    """The circuit breaker is open; the call was refused without touching the system."""

    counts_as_failure = False


class SystemTimeout(CrosswalkSystemError, TimeoutError):
    """The system did not answer before the call's deadline."""

    code = "SYSTEM_TIMEOUT"


class Throttled(CrosswalkSystemError):
    """The system (or the actor's own mailbox) asked the caller to slow down."""

    code = "THROTTLED"
    counts_as_failure = False


class Rejected(CrosswalkSystemError):
    """The system refused the request as invalid; the same call will fail again."""

    code = "VALIDATION_FAILED"
    retryable = False
    counts_as_failure = False


class NotFound(Rejected):
    """The record asked for does not exist in the system."""

    code = "NOT_FOUND"


class Conflict(Rejected):
    """A duplicate value or a stale ETag."""


class MalformedResponse(CrosswalkSystemError):
    """The system answered, but the body could not be understood."""


class LimitExceeded(MalformedResponse):
    """The answer went past a bound set in policy (``bounds`` in policies/systems.toml).

    A body larger than ``max_body_bytes`` or paging past ``max_pages`` is not read on:
    a system that answers that much is broken or the request is wrong, and reading on
    would cost memory and quota without end.
    """


class ActorStopped(CrosswalkSystemError):
    """The actor stopped before it handled the message."""

    retryable = True
    counts_as_failure = False


# ---------------------------------------------------------------------------- HTTP status

#: what an HTTP status means when the vendor's own error table says nothing more; any
#: other 4xx is ``Rejected``, any 5xx ``SystemUnavailable``
STATUS_ERRORS: Mapping[int, type[CrosswalkSystemError]] = {
    401: Rejected,
    403: Rejected,
    404: NotFound,
    409: Conflict,
    412: Conflict,
    429: Throttled,
}


def error_for_status(
    system: str,
    status: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    max_retry_after: float = 60.0,
    pause: float | None = None,
    details: dict[str, object] | None = None,
) -> CrosswalkSystemError:
    """The error an answer with ``status`` means, by ``STATUS_ERRORS``.

    A ``Throttled`` one carries the vendor's ``Retry-After`` from ``headers`` (capped at
    ``max_retry_after``), or ``pause`` when the vendor gave none.
    """
    cls = STATUS_ERRORS.get(status) or (SystemUnavailable if status >= 500 else Rejected)
    if cls is Throttled:
        return throttled(
            system,
            message,
            status=status,
            headers=headers,
            max_retry_after=max_retry_after,
            pause=pause,
            details=details,
        )
    return cls(system, message, status=status, details=details)


def throttled(
    system: str,
    message: str,
    *,
    status: int,
    headers: Mapping[str, str] | None,
    max_retry_after: float,
    pause: float | None = None,
    details: dict[str, object] | None = None,
) -> Throttled:
    """``Throttled`` with the vendor's ``Retry-After`` when it sent one, else ``pause``."""
    hint = None if headers is None else retry_after_seconds(headers, max_retry_after)
    return Throttled(
        system,
        message,
        status=status,
        retry_after=pause if hint is None else hint,
        details=details,
    )


def refused_credentials(
    system: str, message: str, *, status: int, details: dict[str, object] | None = None
) -> SystemUnavailable:
    """A 401 from a vendor whose credentials are all we have: the system is unusable for
    us (its breaker may open), and retrying with the same key or token cannot help."""
    error = SystemUnavailable(system, message, status=status, details=details)
    error.retryable = False
    return error


def retry_after_seconds(headers: Mapping[str, str], cap: float) -> float | None:
    """A ``Retry-After`` header in seconds, within ``[0, cap]``; ``None`` if absent.

    Both forms HTTP allows are read (delta-seconds and an HTTP date). A value past
    ``cap`` (``bounds.max_retry_after``), or one that is not a finite number (``inf``,
    ``nan``), is capped: a vendor's hint must not stop calls for longer than policy says.
    """
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return cap
    return min(max(0.0, seconds), cap)
