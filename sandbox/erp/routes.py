"""The ERP sandbox's HTTP surface: SAP Gateway's OData V2 rules around the three services.

Per request: the built-in rate limit (503 + ``Retry-After``), Basic auth (401), then for
writes the CSRF check (403 + ``x-csrf-token: Required``) and, on existing entities, the
ETag check (428 without ``If-Match``, 412 when stale); only then is the body validated and,
if valid, written. ``POST`` with ``X-HTTP-Method: MERGE|PATCH|PUT|DELETE`` is tunnelled as
SAP clients do.

``POST <service>/$batch`` carries several reads in one request (``sandbox.erp.batch``):
rate limit, auth and the chaos layer see it as one call; each part goes to the handler
its single ``GET`` would reach, and answers what that ``GET`` would answer. A batch of
reads needs no CSRF token (a sandbox choice: writes stay single requests).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sandbox.app import SandboxState, state_of
from sandbox.erp.batch import PartAnswer, PartRequest, parse_batch, render_batch
from sandbox.erp.errors import ErpDialect, ODataError
from sandbox.erp.lookup import Lookup, candidates, get_entity
from sandbox.erp.metadata import metadata_xml
from sandbox.erp.model import ENTITY_SETS, SERVICES, EntitySet, Service
from sandbox.erp.odata import (
    PAGE_SIZE,
    Query,
    ResourcePath,
    apply,
    next_link,
    parse_path,
    parse_query,
)
from sandbox.erp.security import (
    CsrfRequiredError,
    RateLimit,
    authenticate,
    check_csrf,
    csrf_fetch,
    csrf_required,
)
from sandbox.erp.wire import Renderer, etag_of
from sandbox.erp.writes import DEEP_ONLY, check_etag, create, delete, read_body, update, write_lock

__all__ = ["ROOT", "routes"]

ROOT = "/sap/opu/odata/sap"
_WRITE_METHODS = {"POST", "PUT", "PATCH", "MERGE", "DELETE"}

Handler = Callable[[Request, SandboxState], Awaitable[Response]]


def _guarded(limit: RateLimit, dialect: ErpDialect, page_size: int, handler: Handler) -> Any:
    async def endpoint(request: Request) -> Response:
        if not limit.take():
            return dialect.throttle_response()
        state = state_of(request)
        request.state.page_size = page_size
        try:
            authenticate(request)
            response = await handler(request, state)
        except ODataError as exc:
            response = exc.response()
        response.headers["dataserviceversion"] = "2.0"
        return response

    return endpoint


def _read_only(request: Request) -> None:
    if request.method not in ("GET", "HEAD"):
        raise ODataError(405, f"Method {request.method} is not allowed on this resource")


def _service(request: Request) -> Service:
    name = request.path_params["service"]
    service = SERVICES.get(name)
    if service is None:
        raise ODataError(404, f"No service found for namespace '', name '{name}', version '0001'")
    return service


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def _renderer(request: Request, state: SandboxState) -> Renderer:
    return Renderer(_root_url(request), Lookup(state))


def _root_url(request: Request) -> str:
    """``<scheme>://<host>/sap/opu/odata/sap`` as ``request.url`` gives it, read from the
    Host header directly when it is a plain one (parsing the whole URL per call is not
    free; every read and write renders entities under this root)."""
    host = request.headers.get("host")
    if host and host.isprintable() and not any(c in host for c in " /?#\\"):
        return f"{request.scope.get('scheme', 'http')}://{host}{ROOT}"
    return f"{request.url.scheme}://{request.url.netloc}{ROOT}"


async def service_document(request: Request, state: SandboxState) -> Response:
    _read_only(request)
    service = _service(request)
    names = [s.name for s in service.sets]
    wants_json = request.query_params.get("$format", "").lower() == "json" or (
        "json" in request.headers.get("accept", "")
    )
    if wants_json:
        response = _json({"d": {"EntitySets": names}})
    else:
        base = f"{request.url.scheme}://{request.url.netloc}{ROOT}/{service.name}/"
        collections = "".join(
            f'<app:collection href="{n}"><atom:title>{n}</atom:title></app:collection>'
            for n in names
        )
        xml = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f'<app:service xml:base="{base}" xmlns:app="http://www.w3.org/2007/app" '
            'xmlns:atom="http://www.w3.org/2005/Atom">'
            f"<app:workspace><atom:title>Data</atom:title>{collections}</app:workspace>"
            "</app:service>"
        )
        response = Response(xml, media_type="application/xml")
    return csrf_fetch(request, state, response)


async def metadata(request: Request, state: SandboxState) -> Response:
    _read_only(request)
    service = _service(request)
    response = Response(metadata_xml(service), media_type="application/xml")
    return csrf_fetch(request, state, response)


async def resource(request: Request, state: SandboxState) -> Response:
    service = _service(request)
    target = parse_path(service, request.path_params["path"])
    method = request.method.upper()
    if method not in ("GET", "HEAD", *_WRITE_METHODS):
        raise ODataError(405, f"Method {method} is not allowed on this resource")
    if method == "POST":
        tunnel = request.headers.get("x-http-method", "").upper()
        if tunnel:
            if tunnel not in ("MERGE", "PATCH", "PUT", "DELETE"):
                raise ODataError(405, f"X-HTTP-Method '{tunnel}' is not supported")
            method = tunnel
    if method in _WRITE_METHODS:
        try:
            check_csrf(request, state)
        except CsrfRequiredError:
            return csrf_required()
        async with write_lock(state):
            return await _write(request, state, target, method)
    response = await _read(request, state, target)
    return csrf_fetch(request, state, response)


async def _read(request: Request, state: SandboxState, target: ResourcePath) -> Response:
    es = target.entity_set
    params = request.query_params.multi_items()
    if target.key is None:
        q = parse_query(es, params, single=False)
        return _collection(request, state, es, candidates(state, es, q), q, target.count)
    doc = get_entity(state, es, target.key)
    renderer = _renderer(request, state)
    if target.nav is None:
        q = parse_query(es, params, single=True)
        entity = renderer.entity(es, doc, select=q.select, expand=q.expand)
        return _json({"d": entity}, headers={"ETag": etag_of(doc)})
    nav = target.nav
    related = ENTITY_SETS[nav.target]
    rows = list(renderer.store_lookup(nav, doc))
    if nav.many:
        q = parse_query(related, params, single=False)
        return _collection(request, state, related, rows, q, target.count)
    q = parse_query(related, params, single=True)
    if not rows:
        raise ODataError(404, f"No '{nav.name}' exists for this entity")
    entity = renderer.entity(related, rows[0], select=q.select, expand=q.expand)
    return _json({"d": entity}, headers={"ETag": etag_of(rows[0])})


def _collection(
    request: Request,
    state: SandboxState,
    es: EntitySet,
    docs: list[dict[str, Any]],
    q: Query,
    count_only: bool,
) -> Response:
    page, count, following = apply(es, docs, q, request.state.page_size)
    if count_only:
        return Response(str(count), media_type="text/plain")
    renderer = _renderer(request, state)
    body: dict[str, Any] = {
        "results": [renderer.entity(es, d, select=q.select, expand=q.expand) for d in page]
    }
    if q.inlinecount:
        body["__count"] = str(count)
    if following >= 0:
        url = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
        body["__next"] = next_link(url, q, following)
    return _json({"d": body})


async def _write(
    request: Request, state: SandboxState, target: ResourcePath, method: str
) -> Response:
    es = target.entity_set
    if target.count:
        raise ODataError(405, f"Method {method} is not allowed on $count")
    if target.nav is not None:
        if method != "POST" or not target.nav.many or target.key is None:
            raise ODataError(405, f"Method {method} is not allowed on '{target.nav.name}'")
        parent = get_entity(state, es, target.key)
        child = ENTITY_SETS[target.nav.target]
        if child.name in DEEP_ONLY:
            raise ODataError(405, f"'{child.name}' is created with its parent (deep insert)")
        body = await read_body(request)
        if isinstance(body, dict):
            body = {**body, **{b: parent[a] for a, b in target.nav.link}}
        return await create(_renderer(request, state), state, child, body)
    if target.key is None:
        if method != "POST":
            raise ODataError(405, f"Method {method} is not allowed on the collection '{es.name}'")
        if not es.creatable or es.name in DEEP_ONLY:
            raise ODataError(405, f"Entities of '{es.name}' cannot be created here")
        return await create(_renderer(request, state), state, es, await read_body(request))
    if method == "POST":
        raise ODataError(405, "POST on a single entity needs X-HTTP-Method (MERGE, PUT, DELETE)")
    doc = get_entity(state, es, target.key)
    check_etag(request, doc)
    if method == "DELETE":
        if not es.deletable:
            raise ODataError(405, f"Entities of '{es.name}' cannot be deleted")
        await delete(state, es, doc)
        return Response(status_code=204)
    if not es.updatable:
        raise ODataError(405, f"Entities of '{es.name}' cannot be changed")
    body = await read_body(request)
    changed = await update(state, es, doc, body, replace=method == "PUT")
    return Response(status_code=204, headers={"ETag": etag_of(changed)})


async def batch(request: Request, state: SandboxState) -> Response:
    if request.method != "POST":
        raise ODataError(405, f"Method {request.method} is not allowed on $batch: POST a batch")
    service = _service(request)
    parts = parse_batch(request.headers.get("content-type", ""), await request.body())
    answers = [await _answer_part(request, state, service, part) for part in parts]
    content_type, body = render_batch(answers)
    return Response(body, status_code=202, headers={"Content-Type": content_type})


async def _answer_part(
    outer: Request, state: SandboxState, service: Service, part: PartRequest
) -> PartAnswer:
    """One part, through the handler its single GET reaches (no HTTP round trip)."""
    try:
        if part.method != "GET":
            raise ODataError(
                400, f"{part.method} in a batch must be inside a changeset; only GET may be outside"
            )
        response = await _dispatch(_part_request(outer, service, part), state)
    except ODataError as exc:
        response = exc.response()
    headers = [("content-type", response.headers.get("content-type", "application/json"))]
    if "etag" in response.headers:
        headers.append(("etag", response.headers["etag"]))
    headers.append(("dataserviceversion", "2.0"))
    return PartAnswer(response.status_code, tuple(headers), bytes(response.body))


def _part_request(outer: Request, service: Service, part: PartRequest) -> Request:
    """The request a part's single GET would be: same host and scheme, its own URL and
    headers, under the batch's path parameters for the service."""
    url = part.url
    own_root = f"{ROOT}/{service.name}/"
    if url.startswith(own_root):
        url = url[len(own_root) :]
    elif url.startswith(("/", "http:", "https:")):
        raise ODataError(400, f"Batch part URL '{url[:80]}' must be relative to the service root")
    raw_path, _, query = url.partition("?")
    path = unquote(raw_path)
    full = own_root + path
    host = [(b"host", outer.headers["host"].encode("latin-1"))] if "host" in outer.headers else []
    scope = {
        **outer.scope,
        "method": "GET",
        "path": full,
        "raw_path": full.encode(),
        "query_string": query.encode("latin-1", errors="replace"),
        "headers": host
        + [(k.encode(), v.encode("latin-1", errors="replace")) for k, v in part.headers],
        "path_params": {"service": service.name, "path": path},
        "state": dict(outer.scope.get("state", {})),
    }
    return Request(scope)


async def _dispatch(request: Request, state: SandboxState) -> Response:
    path = request.path_params["path"]
    if path in ("", "/"):
        return await service_document(request, state)
    if path == "$metadata":
        return await metadata(request, state)
    if path == "$batch":
        raise ODataError(400, "A batch cannot contain a batch")
    return await resource(request, state)


def routes(limit: RateLimit, dialect: ErpDialect, page_size: int = PAGE_SIZE) -> list[BaseRoute]:
    """The three services' routes, behind the rate limit, with ``page_size`` server paging."""
    # every method reaches the handlers, so that even a refused one gets SAP's error body
    methods = ["GET", "POST", "PUT", "PATCH", "MERGE", "DELETE", "OPTIONS"]

    def route(path: str, handler: Handler) -> Route:
        return Route(path, _guarded(limit, dialect, page_size, handler), methods=methods)

    return [
        route(f"{ROOT}/{{service}}", service_document),
        route(f"{ROOT}/{{service}}/", service_document),
        route(f"{ROOT}/{{service}}/$metadata", metadata),
        route(f"{ROOT}/{{service}}/$batch", batch),
        route(f"{ROOT}/{{service}}/{{path:path}}", resource),
    ]
