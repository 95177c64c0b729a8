"""Support's error table: what a Zendesk error answer means in ``actors.errors``.

Zendesk answers errors as ``{"error", "description", "details": {field: [{"error"}]}}``.
Its own readings come first: 422 ``RecordInvalid`` with a ``DuplicateValue`` detail and 400
``IdempotentRequestError`` -> ``Conflict``. The rest is the shared table
(``actors.errors.error_for_status``): 429 -> ``Throttled`` with ``Retry-After``; 404 ->
``NotFound``; 401 and 403 -> ``Rejected`` naming the credentials to check; 409 ->
``Conflict``; other 4xx (422 ``RecordInvalid``) -> ``Rejected`` naming the fields; 5xx ->
``SystemUnavailable``.
"""

from __future__ import annotations

from typing import NoReturn

from actors.connector import Response
from actors.errors import STATUS_ERRORS, Conflict, error_for_status
from canonical import System

__all__ = ["raise_for"]


def raise_for(response: Response, what: str, *, max_retry_after: float) -> NoReturn:
    """Raise the error a Zendesk error answer to ``what`` means (see the module docstring)."""
    system = System.SUPPORT
    status = response.status
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    description = body.get("description") if isinstance(body, dict) else None
    text = f"{what} answered {status} {error or ''}: {description or response.body[:120]!r}"
    if status == 429:
        text = f"{what} was rate limited; wait for Retry-After before calling again"
    details = body.get("details") if isinstance(body, dict) else None
    fields = dict(details) if isinstance(details, dict) else {}
    kept: dict[str, object] | None = None
    if status in (401, 403):
        text = f"{text}; check the support credentials in policies/systems.toml"
    elif status < 500 and status not in (404, 429):
        duplicate = any(
            isinstance(item, dict) and item.get("error") == "DuplicateValue"
            for problems in fields.values()
            if isinstance(problems, list)
            for item in problems
        )
        if duplicate or error == "IdempotentRequestError":
            raise Conflict(system, text, status=status, details=fields)
        if fields and status not in STATUS_ERRORS:
            text = f"{text}; fields: {', '.join(sorted(fields))}"
        kept = fields
    raise error_for_status(
        system,
        status,
        text,
        headers=response.headers,
        max_retry_after=max_retry_after,
        details=kept,
    )
