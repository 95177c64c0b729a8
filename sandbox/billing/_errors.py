"""Stripe's error bodies, and the dialect the chaos layer speaks them with.

Every Stripe error is ``{"error": {"type", "code", "message", "param"}}`` (``code`` and
``param`` only when they apply). ``Stripe-Should-Retry`` tells clients whether the same
request may succeed later: false for a request that is wrong, true for a server failure,
a rate limit or a concurrent use of the same idempotency key.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from starlette.responses import Response

__all__ = ["BillingDialect", "StripeError", "error_response", "json_response", "request_id"]


class StripeError(Exception):
    """A Stripe error answer: raise it from a handler and it becomes the response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
        should_retry: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.extra = extra or {}
        self.should_retry = should_retry if should_retry is not None else status >= 500

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}

    def response(self) -> Response:
        return error_response(self)


def request_id() -> str:
    return "req_" + secrets.token_hex(7)


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def error_response(error: StripeError) -> Response:
    headers = {"Stripe-Should-Retry": "true" if error.should_retry else "false"}
    return json_response(error.body(), error.status, headers)


def rate_limit_error() -> StripeError:
    return StripeError(
        429,
        "Too many requests hit the API too quickly. We recommend an exponential backoff of "
        "your requests.",
        code="rate_limit",
        should_retry=True,
    )


class BillingDialect:
    """How the billing sandbox says chaos errors: Stripe's bodies and headers."""

    system = "billing"

    def error_response(self, status: int, message: str) -> Response:
        if status == 413:
            return StripeError(413, message, should_retry=False).response()
        return StripeError(status, message, type="api_error", should_retry=True).response()

    def throttle_response(self) -> Response:
        return rate_limit_error().response()
