"""How the support sandbox speaks: Zendesk's error bodies, auth, rate limit and signatures.

Everything here is about the shape of an answer, not about tickets or organizations:
the JSON error bodies Zendesk sends (``RecordInvalid`` with per-field ``details``,
``RecordNotFound``, ``Couldn't authenticate you``), the ``X-Rate-Limit`` headers and the
429 answer, reading a JSON request body the way Zendesk refuses bad ones, and the
webhook signature ``base64(HMAC-SHA256(secret, timestamp + body))``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from sandbox.webhooks import Signer

__all__ = [
    "AGENT_EMAIL",
    "API_TOKEN",
    "RateLimiter",
    "SupportDialect",
    "ZendeskError",
    "authenticated",
    "bad_request",
    "iso",
    "iso_date",
    "json_response",
    "make_signer",
    "not_found",
    "now_iso",
    "read_json",
    "record_invalid",
    "unauthorized",
]

#: sandbox credentials (README, "The sandbox systems"): Basic agent@example.com/token:sandbox
AGENT_EMAIL = "agent@example.com"
API_TOKEN = "sandbox"
_BASIC = f"{AGENT_EMAIL}/token:{API_TOKEN}".encode()

#: Zendesk's 429 body is plain text, exactly this sentence
THROTTLE_TEXT = "Number of allowed API requests per minute exceeded"

Details = dict[str, list[dict[str, str]]]


def iso(moment: datetime) -> str:
    """Zendesk's timestamp form: ISO 8601 in UTC with a ``Z``, whole seconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_iso() -> str:
    """``iso`` of now (from the clock as it is: no datetime built per write)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def iso_date(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def json_response(
    body: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json; charset=utf-8",
        headers=dict(headers or {}),
    )


class ZendeskError(Exception):
    """An answer that ends a request early: raised by handlers, rendered by the wrapper."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {body.get('error')}")
        self.status = status
        self.body = body

    def response(self) -> Response:
        return json_response(self.body, self.status)


def record_invalid(details: Details) -> ZendeskError:
    return ZendeskError(
        422,
        {"error": "RecordInvalid", "description": "Record validation errors", "details": details},
    )


def not_found() -> ZendeskError:
    return ZendeskError(404, {"error": "RecordNotFound", "description": "Not found"})


def bad_request(error: str, description: str) -> ZendeskError:
    return ZendeskError(400, {"error": error, "description": description})


def unauthorized() -> Response:
    return json_response({"error": "Couldn't authenticate you"}, 401)


def authenticated(header: str | None) -> bool:
    """Basic ``agent@example.com/token:sandbox`` or Bearer ``sandbox``, in constant time."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(decoded, _BASIC)
    if scheme == "bearer":
        return hmac.compare_digest(value.encode(), API_TOKEN.encode())
    return False


async def read_json(request: Request) -> dict[str, Any]:
    """The request's JSON object, or Zendesk's 400/415 answer for anything else."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise ZendeskError(
            415,
            {
                "error": "UnsupportedMediaType",
                "description": "Content-Type must be application/json",
            },
        )
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request("Unprocessable Entity", "Server could not parse JSON") from None
    if not isinstance(body, dict):
        raise bad_request("Unprocessable Entity", "Server could not parse JSON")
    return body


@dataclass(slots=True)
class RateLimiter:
    """Zendesk's per-minute account limit, as a token bucket refilled continuously."""

    limit: int = 700  # requests per minute
    tokens: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"rate limit must be at least 1 request per minute, got {self.limit}")
        self.refill()

    def refill(self) -> None:
        self.tokens = float(self.limit)
        self.stamp = time.monotonic()

    def _advance(self) -> None:
        now = time.monotonic()
        self.tokens = min(float(self.limit), self.tokens + (now - self.stamp) * self.limit / 60)
        self.stamp = now

    def take(self) -> bool:
        self._advance()
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def retry_after(self) -> int:
        """Whole seconds until one request is allowed again (at least 1)."""
        self._advance()
        return max(1, math.ceil((1 - self.tokens) * 60 / self.limit))

    def headers(self) -> dict[str, str]:
        self._advance()
        remaining = max(0, math.floor(self.tokens))
        return {"X-Rate-Limit": str(self.limit), "X-Rate-Limit-Remaining": str(remaining)}


_ERROR_NAMES = {413: "RequestTooLarge", 500: "InternalError", 503: "ServiceUnavailable"}


@dataclass(slots=True)
class SupportDialect:
    """What the chaos layer says in Zendesk's words."""

    limiter: RateLimiter
    system: str = "support"

    def error_response(self, status: int, message: str) -> Response:
        body = {"error": _ERROR_NAMES.get(status, "Error"), "description": message}
        return json_response(body, status, self.limiter.headers())

    def throttle_response(self) -> Response:
        headers = self.limiter.headers()
        headers["X-Rate-Limit-Remaining"] = "0"
        headers["Retry-After"] = str(self.limiter.retry_after())
        return Response(THROTTLE_TEXT, status_code=429, media_type="text/plain", headers=headers)


def make_signer(secret: str) -> Signer:
    """Zendesk's webhook signer: ``base64(HMAC-SHA256(secret, timestamp + body))``."""
    key = secret.encode()

    def sign(body: bytes, unix_time: int) -> dict[str, str]:
        stamp = iso(datetime.fromtimestamp(unix_time, UTC))
        digest = hmac.new(key, stamp.encode() + body, hashlib.sha256).digest()
        return {
            "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
            "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        }

    return sign
