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
"""

from __future__ import annotations

__all__ = [
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
