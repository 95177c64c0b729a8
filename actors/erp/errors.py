"""The ERP's error table: what an SAP Gateway error answer means in ``actors.errors``.

SAP answers errors as ``{"error": {"code", "message": {"value"}, "innererror":
{"errordetails": [{"propertyref", "message"}]}}}``. The shared table
(``actors.errors.error_for_status``) holds, with SAP's own readings first: 503 with
``Retry-After`` -> Throttled (SAP Gateway's throttle); other 5xx -> SystemUnavailable;
404 -> NotFound; 401 and 403 -> Rejected naming the credentials to check; 409 and 412 (a
second stale ETag) -> Conflict; other 4xx -> Rejected naming the ``propertyref`` fields.
"""

from __future__ import annotations

from typing import NoReturn

from actors.connector import Response
from actors.errors import STATUS_ERRORS, error_for_status, throttled
from canonical import System

__all__ = ["raise_for", "sap_error"]


def raise_for(response: Response, what: str, *, max_retry_after: float) -> NoReturn:
    """Raise the error an SAP error answer to ``what`` means (see the module docstring)."""
    status = response.status
    message, fields = sap_error(response)
    text = f"{what} answered {status}: {message}"
    if status == 503 and "Retry-After" in response.headers:
        raise throttled(
            System.ERP,
            f"{what} was throttled; wait for Retry-After before calling again",
            status=status,
            headers=response.headers,
            max_retry_after=max_retry_after,
        )
    if status in (401, 403):
        text = f"{text}; check the ERP credentials in policies/systems.toml"
    elif fields and status < 500 and status not in STATUS_ERRORS:
        text = f"{text}; fields: {', '.join(sorted(fields))}"
    # the field messages go with a refusal of what was sent, not with a missing record,
    # a credentials problem or a server error
    kept = fields if status < 500 and status not in (401, 403, 404) else None
    raise error_for_status(
        System.ERP,
        status,
        text,
        headers=response.headers,
        max_retry_after=max_retry_after,
        details=kept,
    )


def sap_error(response: Response) -> tuple[str, dict[str, object]]:
    """The SAP error body's message and ``{propertyref: message}`` per detail."""
    try:
        body = response.json()
    except ValueError:
        return response.body[:200].decode(errors="replace"), {}
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return str(body)[:200], {}
    message = error.get("message")
    text = message.get("value") if isinstance(message, dict) else message
    fields: dict[str, object] = {}
    inner = error.get("innererror")
    details = inner.get("errordetails") if isinstance(inner, dict) else None
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and detail.get("propertyref"):
            fields[str(detail["propertyref"])] = detail.get("message") or text
    return str(text or error.get("code") or "error"), fields
