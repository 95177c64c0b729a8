"""What one REST call is and what it answers, shared by the resources and composite."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.crm.schema import SalesforceError

__all__ = ["Answer", "Call", "not_allowed"]


@dataclass(slots=True)
class Answer:
    status: int
    body: Any = None  # JSON, or text when media_type says so
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"  # Bulk API 2.0 results are text/csv


@dataclass(slots=True)
class Call:
    method: str
    path: str  # below BASE, e.g. "/sobjects/Account"
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    client: str | None = None
    batch_size: int | None = None  # Sforce-Query-Options: batchSize=N
    allow_duplicate: bool = False  # sandbox-only: X-Sandbox-Allow-Duplicate: true
    locked: bool = False  # the caller (a composite request) holds the write lock already


def not_allowed(method: str, allowed: str) -> SalesforceError:
    return SalesforceError(
        405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {allowed}"
    )
