"""ERP sandbox: SAP S/4HANA OData V2 (``API_BUSINESS_PARTNER``, ``API_SALES_ORDER_SRV``,
``API_BILLING_DOCUMENT_SRV``, ``API_CREDIT_MEMO_REQUEST_SRV``) under ``/sap/opu/odata/sap/``.

    app = create_app(SandboxConfig.for_system("erp"))

Auth Basic ``sandbox:sandbox``; writes need the CSRF token (``X-CSRF-Token: Fetch`` on a
GET) with its session cookie, and ``If-Match`` on existing entities. Throttling (chaos or
the built-in token bucket) answers 503 with ``Retry-After``. Events go out as CloudEvents
with ``Authorization: Bearer <webhook secret>``. ``POST``/``MERGE`` on ``A_BillingDocument``
is a sandbox extension (SAP's API only reads billing documents). ``POST <service>/$batch``
answers up to 100 reads in one request (changesets are refused with 400).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from starlette.applications import Starlette

from sandbox.app import SandboxConfig, build_app
from sandbox.erp.errors import ErpDialect
from sandbox.erp.events import BILLING_DOCUMENT_CREATED, BUSINESS_PARTNER_CHANGED
from sandbox.erp.odata import PAGE_SIZE
from sandbox.erp.routes import ROOT, routes
from sandbox.erp.security import CREDENTIALS, SESSION_COOKIE, RateLimit
from sandbox.erp.seed import seed

__all__ = [
    "BILLING_DOCUMENT_CREATED",
    "BUSINESS_PARTNER_CHANGED",
    "CREDENTIALS",
    "PAGE_SIZE",
    "ROOT",
    "SESSION_COOKIE",
    "create_app",
    "signer",
]


def signer(secret: str) -> Callable[[bytes, int], Mapping[str, str]]:
    """SAP event delivery authenticates with a shared-secret bearer token, not a signature."""

    def sign(body: bytes, unix_time: int) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {secret}"}

    return sign


def create_app(
    config: SandboxConfig,
    *,
    rate: float = 100.0,
    burst: int = 200,
    retry_after: int = 1,
    page_size: int = PAGE_SIZE,
) -> Starlette:
    """The ERP sandbox app.

    ``rate``/``burst`` size its built-in throttle (requests per second over all callers);
    ``page_size`` is the server-side page after which collections answer ``__next``.
    """
    dialect = ErpDialect(retry_after=retry_after)
    limit = RateLimit(rate=rate, burst=float(burst))
    return build_app(
        config,
        routes=routes(limit, dialect, page_size),
        dialect=dialect,
        seed=seed,
        signer=signer(config.webhook_secret),
    )
