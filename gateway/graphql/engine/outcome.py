"""One operation's answer as the transports send it, and the error shape every answer
uses: the spec's ``errors`` entries, always with ``extensions.code``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError

from actors.errors import CrosswalkSystemError
from gateway.graphql.errors import CodedError, ErrorCode, from_system_error
from gateway.graphql.ratelimit import OverBudget

__all__ = ["Outcome", "RequestParams", "format_error", "request_error", "throttled_outcome"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RequestParams:
    """The GraphQL-over-HTTP request parameters, already type-checked."""

    query: str | None
    operation_name: str | None = None
    variables: dict[str, Any] | None = None
    extensions: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """One operation's response body and how the HTTP layer should treat it.

    ``request_error``: the operation never started (no ``data`` entry); ``status`` forces a
    specific HTTP status whatever the media type (e.g. 405 for a mutation over GET).
    """

    body: dict[str, Any]
    request_error: bool = False
    status: int | None = None
    allow: str | None = None
    #: seconds to wait before retrying (THROTTLED: HTTP 429 with Retry-After)
    retry_after: int | None = None


def request_error(error: GraphQLError, *, status: int | None = None) -> Outcome:
    """A request error: the operation never started (no ``data`` entry)."""
    return Outcome({"errors": [format_error(error)]}, request_error=True, status=status)


def throttled_outcome(throttled: OverBudget) -> Outcome:
    """The answer to a client over its rate limit: 429 with Retry-After."""
    return Outcome(
        {"errors": [throttled.error.formatted]},
        request_error=True,
        status=429,
        retry_after=throttled.retry_after,
    )


def format_error(error: GraphQLError, correlation_id: str | None = None) -> dict[str, Any]:
    """The spec's error shape, always with ``extensions.code``; internals never leak."""
    original = error.original_error
    if isinstance(error, CodedError):
        return error.formatted  # type: ignore[return-value]
    if isinstance(original, CodedError):
        coded = original
    elif isinstance(original, CrosswalkSystemError):
        coded = from_system_error(original)
    elif original is not None and not isinstance(original, GraphQLError):
        log.error(
            "resolver failed at %s (correlation id %s)",
            error.path,
            correlation_id,
            exc_info=original,
        )
        coded = CodedError(
            ErrorCode.INTERNAL_ERROR,
            f"Internal error; quote correlation id {correlation_id} to the operators.",
        )
    else:
        # parse, validation and input coercion errors: the client's request is wrong
        formatted: dict[str, Any] = dict(error.formatted)
        formatted["extensions"] = {**(error.extensions or {}), "code": "VALIDATION_FAILED"}
        return formatted
    formatted = dict(coded.formatted)
    formatted["locations"] = [loc._asdict() for loc in error.locations or ()] or None
    formatted["path"] = error.path
    return {k: v for k, v in formatted.items() if v is not None}
