"""Coded GraphQL errors: every error the experience API reports carries ``extensions.code``.

The codes are part of the API contract (``ErrorCode``). Errors about one back-office
system also carry ``extensions.system``. ``coded_error`` builds such a ``GraphQLError``;
``from_system_error`` turns an ``actors.errors`` exception into one.

Resolvers raise ``CodedError`` (a ``GraphQLError`` subclass) so that graphql-core keeps
its extensions when it locates the error on a field.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from graphql import GraphQLError

from actors import errors as actor_errors

__all__ = [
    "CodedError",
    "ErrorCode",
    "code_for_exception",
    "coded_error",
    "from_system_error",
]


class ErrorCode(enum.StrEnum):
    """The values of ``extensions.code`` (contract: clients branch on them)."""

    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    VALIDATION_FAILED = "VALIDATION_FAILED"
    NOT_FOUND = "NOT_FOUND"
    SYSTEM_UNAVAILABLE = "SYSTEM_UNAVAILABLE"
    SYSTEM_TIMEOUT = "SYSTEM_TIMEOUT"
    THROTTLED = "THROTTLED"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    IDEMPOTENCY_MISMATCH = "IDEMPOTENCY_MISMATCH"
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    # Outside the contract's list: protocol answers and gateway bugs.
    #: APQ: the hash is unknown, resend with the query (the APQ protocol's own code)
    PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    #: a bug in the gateway; the message carries the correlation id to look up in the logs
    INTERNAL_ERROR = "INTERNAL_ERROR"


# Most specific class first: the first isinstance match wins.
_SYSTEM_ERROR_CODES: tuple[tuple[type[actor_errors.CrosswalkSystemError], ErrorCode], ...] = (
    (actor_errors.NotFound, ErrorCode.NOT_FOUND),
    (actor_errors.Conflict, ErrorCode.VALIDATION_FAILED),
    (actor_errors.Rejected, ErrorCode.VALIDATION_FAILED),
    (actor_errors.SystemTimeout, ErrorCode.SYSTEM_TIMEOUT),
    (actor_errors.Throttled, ErrorCode.THROTTLED),
    (actor_errors.BreakerOpen, ErrorCode.SYSTEM_UNAVAILABLE),
    (actor_errors.SystemUnavailable, ErrorCode.SYSTEM_UNAVAILABLE),
    (actor_errors.MalformedResponse, ErrorCode.SYSTEM_UNAVAILABLE),
    (actor_errors.ActorStopped, ErrorCode.SYSTEM_UNAVAILABLE),
    (actor_errors.CrosswalkSystemError, ErrorCode.SYSTEM_UNAVAILABLE),
)


class CodedError(GraphQLError):
    """A GraphQL error whose ``extensions`` always hold ``code`` (and ``system`` if known)."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        system: str | None = None,
        extensions: Mapping[str, Any] | None = None,
        original_error: Exception | None = None,
    ) -> None:
        ext: dict[str, Any] = {"code": code.value}
        if system is not None:
            ext["system"] = system
        if extensions:
            ext.update(extensions)
        super().__init__(message, original_error=original_error, extensions=ext)
        self.code = code
        self.system = system


def coded_error(
    code: ErrorCode,
    message: str,
    *,
    system: str | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> CodedError:
    """Build a ``GraphQLError`` with ``extensions.code`` (and ``extensions.system``)."""
    return CodedError(code, message, system=system, extensions=extensions)


def code_for_exception(exc: BaseException) -> ErrorCode | None:
    """The code for an ``actors.errors`` exception, or ``None`` if it is not one."""
    if isinstance(exc, CodedError):
        return exc.code
    for cls, code in _SYSTEM_ERROR_CODES:
        if isinstance(exc, cls):
            return code
    if isinstance(exc, TimeoutError):
        return ErrorCode.SYSTEM_TIMEOUT
    return None


def from_system_error(exc: actor_errors.CrosswalkSystemError) -> CodedError:
    """Turn an actor's error into the coded GraphQL error a client sees."""
    code = code_for_exception(exc) or ErrorCode.SYSTEM_UNAVAILABLE
    extensions: dict[str, Any] = {}
    if exc.retry_after is not None:
        extensions["retryAfter"] = exc.retry_after
    return CodedError(
        code,
        str(exc),
        system=exc.system,
        extensions=extensions,
        original_error=exc,
    )
