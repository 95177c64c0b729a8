"""The billing sandbox: a stand-in for the Stripe API v1 subset Crosswalk uses.

    app = create_app(SandboxConfig.for_system("billing"))

Speaks Stripe's wire format (API v1): ``Bearer
sk_test_crosswalk`` (or Basic with the key as user name), form-encoded bodies with
bracketed keys, ``{"object": "list"}`` pages newest first with ``starting_after`` /
``ending_before``, customer search, ``Idempotency-Key`` replay, Stripe's error bodies and
``Stripe-Should-Retry``, a ``Request-Id`` on every answer, a built-in rate limit per API
key answered with Stripe's 429, and signed webhook events (``Stripe-Signature``).

Endpoints: ``/v1/customers`` (create, retrieve, update, delete, list, ``/search``),
``/v1/prices``, ``/v1/products``, ``/v1/subscriptions`` (create, retrieve, update, cancel,
list), ``/v1/invoices`` (create, retrieve, update, list, ``/lines``, ``/finalize``,
``/pay``, ``/void``, ``/mark_uncollectible``), ``/v1/invoiceitems``, ``/v1/credit_notes``
(create, retrieve, list, ``/void``) and ``/v1/events``.

Sandbox extensions, documented where they act: ``metadata[sandbox_fail_payments]=true``
on a customer declines its card (``_invoices``); every seeded price bills in eur, gbp,
usd and sek at the same unit amount; every invoice carries one 19% tax.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping

from starlette.applications import Starlette
from starlette.routing import Route

from sandbox.app import SandboxConfig, build_app
from sandbox.billing._credit_notes import credit_note_routes
from sandbox.billing._customers import customer_routes
from sandbox.billing._errors import BillingDialect
from sandbox.billing._http import API_KEYS, Api, Edge, RateLimit, unknown_route
from sandbox.billing._invoices import invoice_routes
from sandbox.billing._seed import seed
from sandbox.billing._subscriptions import subscription_routes

__all__ = ["API_KEYS", "create_app", "stripe_signer"]

_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def stripe_signer(secret: str) -> Callable[[bytes, int], Mapping[str, str]]:
    """Stripe's scheme: ``t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``."""

    def sign(body: bytes, timestamp: int) -> Mapping[str, str]:
        payload = str(timestamp).encode() + b"." + body
        digest = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
        return {"Stripe-Signature": f"t={timestamp},v1={digest}"}

    return sign


def create_app(
    config: SandboxConfig, *, rate_per_second: float = 100.0, rate_burst: float = 100.0
) -> Starlette:
    """The billing sandbox app; the rate limit is per API key (Stripe live mode: 100/s)."""
    api = Api(rate=RateLimit(rate_per_second, rate_burst))
    routes = [
        *customer_routes(api),
        *subscription_routes(api),
        *invoice_routes(api),
        *credit_note_routes(api),
        Route("/{path:path}", unknown_route, methods=_ALL_METHODS),
    ]
    app = build_app(
        config,
        routes=routes,
        dialect=BillingDialect(),
        seed=seed,
        signer=stripe_signer(config.webhook_secret),
    )
    # outermost, so an Idempotency-Key is taken before the chaos latency is served
    app.add_middleware(Edge)
    return app
