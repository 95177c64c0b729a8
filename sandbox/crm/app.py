"""The CRM sandbox app: Salesforce REST API v60.0 over HTTP, with its auth, limits and errors.

- ``GET /services/data``: the versions list (no auth, as in Salesforce);
- everything under ``/services/data/v60.0`` needs ``Authorization: Bearer
  00DSANDBOX!crosswalk`` (``OAuth <token>`` is accepted too); a bad or missing token ->
  401 ``INVALID_SESSION_ID``;
- each authenticated call counts against ``ApiLimits``; every answer carries
  ``Sforce-Limit-Info: api-usage=N/M``; over the limit -> 403 ``REQUEST_LIMIT_EXCEEDED``;
- request headers: ``Sforce-Call-Options: client=<id>`` names the writer in change
  events; ``Sforce-Query-Options: batchSize=<200..2000>`` sizes query batches;
  ``X-Sandbox-Allow-Duplicate: true`` (sandbox only) lets a create skip the unique check
  on external ids, to plant the duplicates that make an upsert answer 300.

Bulk API 2.0 query jobs (``/jobs/query``, ``sandbox.crm.bulk``) go through the same auth,
limits and chaos; their results are the one ``text/csv`` answer.
"""

from __future__ import annotations

import hmac
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.app import SandboxConfig, SandboxState, build_app, state_of
from sandbox.crm.api import CrmApi
from sandbox.crm.calls import Answer, Call
from sandbox.crm.describe import versions
from sandbox.crm.events import bearer_signer
from sandbox.crm.limits import ApiLimits
from sandbox.crm.schema import BASE, SalesforceError
from sandbox.crm.seed import seed_crm

__all__ = ["ACCESS_TOKEN", "CrmDialect", "create_app"]

#: the sandbox org's session id (README, "The sandbox systems")
ACCESS_TOKEN = "00DSANDBOX!crosswalk"
_METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD"]
_CODES = {
    500: "UNKNOWN_EXCEPTION",
    503: "SERVER_UNAVAILABLE",
    413: "REQUEST_ENTITY_TOO_LARGE",
    404: "NOT_FOUND",
    400: "JSON_PARSER_ERROR",
}


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    if status == 204 or body is None:
        return Response(status_code=status, headers=headers)
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


class CrmDialect:
    """How Salesforce says server errors and "over the limit"."""

    system = "crm"

    def __init__(self, limits: ApiLimits) -> None:
        self.limits = limits

    def error_response(self, status: int, message: str) -> Response:
        body = [{"message": message, "errorCode": _CODES.get(status, "UNKNOWN_EXCEPTION")}]
        return _json(status, body, {"Sforce-Limit-Info": self.limits.header()})

    def throttle_response(self) -> Response:
        body = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
        return _json(403, body, {"Sforce-Limit-Info": self.limits.header()})


def _options(header: str | None) -> dict[str, str]:
    """``Sforce-Call-Options: client=crosswalk, defaultNamespace=x`` as a dict."""
    out: dict[str, str] = {}
    for part in (header or "").split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _authorized(request: Request) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() in ("bearer", "oauth") and hmac.compare_digest(
        token.strip().encode(), ACCESS_TOKEN.encode()
    )


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype not in ("application/json", "text/json", ""):
        raise SalesforceError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"Content-Type '{ctype}' is not supported here: send application/json",
        )
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SalesforceError(
            400, "JSON_PARSER_ERROR", f"The request body is not valid JSON: {exc}"
        ) from None


def create_app(
    config: SandboxConfig,
    *,
    batch_size: int = 2000,
    daily_limit: int = 100_000,
    per_second: float = 200.0,
    burst: int = 400,
    bulk_polls: int = 2,
) -> Starlette:
    """The CRM sandbox. Tests may shrink ``batch_size`` (query paging) and the limits, and
    set ``bulk_polls``: how many reads of a Bulk API 2.0 query job it takes to complete."""
    limits = ApiLimits(daily=daily_limit, per_second=per_second, burst=burst)
    api = CrmApi(limits, batch_size=batch_size, bulk_polls=bulk_polls)
    dialect = CrmDialect(limits)

    async def seed(state: SandboxState) -> None:
        limits.reset()
        api.reset()
        await seed_crm(state)

    async def versions_list(request: Request) -> Response:
        return _json(200, versions())

    async def rest(request: Request) -> Response:
        if not _authorized(request):
            denied = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
            return _json(401, denied, {"WWW-Authenticate": 'Token realm="sandbox"'})
        if not limits.admit():
            return dialect.throttle_response()
        headers = {"Sforce-Limit-Info": limits.header()}
        try:
            payload = await _body(request) if request.method in ("POST", "PATCH", "PUT") else None
            query_options = _options(request.headers.get("sforce-query-options"))
            batch = query_options.get("batchSize", "")
            call = Call(
                method=request.method,
                path=request.path_params["rest"],
                params=dict(request.query_params),
                body=payload,
                client=_options(request.headers.get("sforce-call-options")).get("client"),
                batch_size=min(max(int(batch), 200), 2000) if batch.isdigit() else None,
                allow_duplicate=request.headers.get("x-sandbox-allow-duplicate", "") == "true",
            )
            answer: Answer = await api.dispatch(state_of(request), call)
        except SalesforceError as exc:
            return _json(exc.status, exc.body(), headers)
        headers.update(answer.headers)
        if request.method == "HEAD":
            return Response(status_code=answer.status, headers=headers)
        if answer.media_type != "application/json":
            return Response(answer.body, answer.status, headers, media_type=answer.media_type)
        return _json(answer.status, answer.body, headers)

    async def not_found(request: Request) -> Response:
        body = [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
        return _json(404, body)

    routes = [
        Route("/services/data", versions_list, methods=["GET"]),
        Route("/services/data/", versions_list, methods=["GET"]),
        Route(BASE + "{rest:path}", rest, methods=_METHODS),
        Route("/{path:path}", not_found, methods=_METHODS),
    ]
    return build_app(
        config,
        routes=routes,
        dialect=dialect,
        seed=seed,
        signer=bearer_signer(config.webhook_secret),
    )
