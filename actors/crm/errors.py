"""The CRM's error table: what a Salesforce error answer means in ``actors.errors``.

Salesforce answers errors as a list of ``{"errorCode", "message", "fields"}``. Its own
readings come first (documented choices):

- 403 ``REQUEST_LIMIT_EXCEEDED`` -> ``Throttled`` with ``retry_after = THROTTLE_PAUSE``
  (5 s: Salesforce gives no hint, and the limit is an allowance, not a momentary spike);
- 401 ``INVALID_SESSION_ID`` -> ``SystemUnavailable`` marked not retryable: the system is
  unusable for us (the breaker may open) but retrying with the same token cannot help;
- 300 (several records carry the external id) and ``DUPLICATE_VALUE`` -> ``Conflict``.

The rest is the shared table (``actors.errors.error_for_status``): 404 -> ``NotFound``;
other 4xx (``MALFORMED_QUERY``, ``INVALID_FIELD``, ``REQUIRED_FIELD_MISSING`` ...) ->
``Rejected`` with the ``errorCode`` and ``fields`` in ``details``; 5xx ->
``SystemUnavailable``. An unreadable 4xx body is a ``MalformedResponse``.
"""

from __future__ import annotations

from typing import Any, NoReturn

from actors.connector import Response
from actors.errors import (
    STATUS_ERRORS,
    Conflict,
    MalformedResponse,
    Rejected,
    Throttled,
    error_for_status,
    refused_credentials,
)
from canonical import System

__all__ = ["THROTTLE_PAUSE", "error_body", "raise_for"]

#: seconds to pause after REQUEST_LIMIT_EXCEEDED (Salesforce sends no Retry-After)
THROTTLE_PAUSE = 5.0


def error_body(response: Response) -> Any:
    try:
        return response.json()
    except ValueError:
        if response.status >= 500:
            return None
        raise MalformedResponse(
            System.CRM, f"unreadable {response.status} answer", status=response.status
        ) from None


def raise_for(status: int, body: Any, what: str) -> NoReturn:
    """Raise the error a Salesforce answer (``status``, its JSON ``body``) to ``what``
    means; composite subrequests' answers come here too (see the module docstring)."""
    system = System.CRM
    first = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else {}
    code = str(first.get("errorCode", ""))
    message = str(first.get("message", "")).strip() or f"HTTP {status}"
    details: dict[str, object] = {"errorCode": code, "fields": first.get("fields") or []}
    if status >= 500:
        raise error_for_status(system, status, f"{what}: {message}")
    if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
        raise Throttled(
            system,
            f"{what}: {message} (the org's API allowance is spent; pausing)",
            status=status,
            retry_after=THROTTLE_PAUSE,
        )
    if status == 401:
        raise refused_credentials(
            system,
            f"{what}: {message}: check the CRM access_token in policies/systems.toml",
            status=status,
            details=details,
        )
    if status == 300:
        urls = body if isinstance(body, list) else []
        raise Conflict(
            system,
            f"{what}: several records carry this external id: {urls}",
            status=status,
            details={"errorCode": "MULTIPLE_CHOICES", "records": urls},
        )
    if code == "DUPLICATE_VALUE":
        raise Conflict(system, f"{what}: {message}", status=status, details=details)
    plain = STATUS_ERRORS.get(status, Rejected) is Rejected
    text = f"{what}: {code}: {message}" if plain else f"{what}: {message}"
    raise error_for_status(system, status, text, pause=THROTTLE_PAUSE, details=details)
