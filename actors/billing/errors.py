"""Billing's error table: what a Stripe error answer means in ``actors.errors``.

Stripe answers errors as ``{"error": {"type", "code", "message", "param"}}``. Stripe's own
readings come first: 409 (the same Idempotency-Key still in flight) -> ``Throttled``
(retry soon, ``IN_FLIGHT_PAUSE``); a 5xx with ``Stripe-Should-Retry: false`` (a failure
replayed for the same Idempotency-Key) -> ``Rejected``; 401 -> ``SystemUnavailable`` not
retryable; ``idempotency_error`` -> ``Conflict``; ``resource_missing`` -> ``NotFound``.
The rest is the shared table (``actors.errors.error_for_status``): 429 -> ``Throttled``
(``retry_after = THROTTLE_PAUSE``: Stripe sends no hint), 404 -> ``NotFound``, other 4xx
(402 ``card_error`` among them) -> ``Rejected`` with ``param`` in ``details["fields"]``,
5xx -> ``SystemUnavailable``. An answer without a Stripe error body is
``SystemUnavailable`` for a 5xx, else ``MalformedResponse``.
"""

from __future__ import annotations

from typing import NoReturn

from actors.connector import Response
from actors.errors import (
    Conflict,
    CrosswalkSystemError,
    MalformedResponse,
    NotFound,
    Rejected,
    SystemUnavailable,
    Throttled,
    error_for_status,
    refused_credentials,
)
from canonical import System

__all__ = ["IN_FLIGHT_PAUSE", "THROTTLE_PAUSE", "raise_for"]

#: seconds to wait after a 429: Stripe sends no Retry-After
THROTTLE_PAUSE = 1.0
#: seconds to wait when the same Idempotency-Key is still being served (409)
IN_FLIGHT_PAUSE = 0.25


def raise_for(response: Response, what: str, *, max_retry_after: float) -> NoReturn:
    """Raise the error a Stripe error answer to ``what`` means (see the module docstring)."""
    system = System.BILLING
    status = response.status
    retry_header = response.headers.get("Stripe-Should-Retry")
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        if status >= 500:
            raise SystemUnavailable(system, f"{what} answered {status}", status=status)
        raise MalformedResponse(
            system, f"{what} answered {status} without a Stripe error body", status=status
        )
    kind = str(error.get("type") or "")
    code = error.get("code")
    param = error.get("param")
    message = f"{what}: {error.get('message') or kind}"
    details: dict[str, object] = {
        "type": kind,
        "code": code,
        "fields": [param] if param else [],
    }
    if "decline_code" in error:
        details["decline_code"] = error["decline_code"]
    failure: CrosswalkSystemError
    if status == 409:
        failure = Throttled(system, message, status=status, retry_after=IN_FLIGHT_PAUSE)
    elif status >= 500 and retry_header == "false":
        # a stored failure replayed for this Idempotency-Key: it will answer the same again
        failure = Rejected(system, message, status=status, details=details)
    elif status == 401:
        # the same key will be refused again
        failure = refused_credentials(system, message, status=status, details=details)
    elif status != 429 and status < 500 and kind == "idempotency_error":
        failure = Conflict(system, message, status=status, details=details)
    elif status != 429 and status < 500 and code == "resource_missing":
        failure = NotFound(system, message, status=status, details=details)
    else:
        failure = error_for_status(
            system,
            status,
            message,
            headers=response.headers,
            max_retry_after=max_retry_after,
            pause=THROTTLE_PAUSE,
            details=details,
        )
    raise failure
