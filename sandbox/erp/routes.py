"""The ERP sandbox's HTTP surface: SAP Gateway's OData V2 rules around the three services.

Per request: the built-in rate limit (503 + ``Retry-After``), Basic auth (401), then for
writes the CSRF check (403 + ``x-csrf-token: Required``) and, on existing entities, the
ETag check (428 without ``If-Match``, 412 when stale); only then is the body validated and,
if valid, written. ``POST`` with ``X-HTTP-Method: MERGE|PATCH|PUT|DELETE`` is tunnelled as
SAP clients do.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sandbox.app import SandboxState, state_of
from sandbox.erp.errors import ErpDialect, ODataError
from sandbox.erp.model import ENTITY_SETS, SERVICES, EntitySet, Nav, Service, metadata_xml
from sandbox.erp.odata import (
    PAGE_SIZE,
    Query,
    Renderer,
    ResourcePath,
    apply,
    check_payload,
    etag_of,
    next_link,
    parse_path,
    parse_query,
)
from sandbox.erp.seed import MATERIAL_PRICES, SALES_AREA

__all__ = [
    "BILLING_DOCUMENT_CREATED",
    "BUSINESS_PARTNER_CHANGED",
    "CREDENTIALS",
    "ROOT",
    "SESSION_COOKIE",
    "RateLimit",
    "routes",
]

ROOT = "/sap/opu/odata/sap"
CREDENTIALS = ("sandbox", "sandbox")
SESSION_COOKIE = "SAP_SESSIONID_S4H_100"
BILLING_DOCUMENT_CREATED = "sap.s4.beh.billingdocument.v1.BillingDocument.Created.v1"
BUSINESS_PARTNER_CHANGED = "sap.s4.beh.businesspartner.v1.BusinessPartner.Changed.v1"
EVENT_SOURCE = "/default/sap.s4.beh/S4HCLNT100"
#: CSRF sessions kept at once; the oldest is forgotten first (its client fetches again)
MAX_SESSIONS = 10_000
_WRITE_METHODS = {"POST", "PUT", "PATCH", "MERGE", "DELETE"}
#: entity sets whose changes are a change of the business partner they belong to
_BP_FAMILY = {
    "A_BusinessPartner": "BusinessPartner",
    "A_BusinessPartnerAddress": "BusinessPartner",
    "A_BusinessPartnerTaxNumber": "BusinessPartner",
    "A_Customer": "Customer",
    "A_CustomerSalesArea": "Customer",
}
#: entity sets created only inside their parent's deep insert
_DEEP_ONLY = {"A_Customer", "A_CustomerSalesArea", "A_SalesOrderItem"}


@dataclass(slots=True)
class RateLimit:
    """A token bucket over all callers: ``rate`` requests/s sustained, ``burst`` at once."""

    rate: float = 100.0
    burst: float = 200.0
    tokens: float = -1.0
    updated: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        if self.tokens < 0:
            self.tokens = self.burst
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


# ---------------------------------------------------------------------------- plumbing

Handler = Callable[[Request, SandboxState], Awaitable[Response]]


def _guarded(limit: RateLimit, dialect: ErpDialect, page_size: int, handler: Handler) -> Any:
    async def endpoint(request: Request) -> Response:
        if not limit.take():
            return dialect.throttle_response()
        state = state_of(request)
        request.state.page_size = page_size
        try:
            _authenticate(request)
            return await handler(request, state)
        except ODataError as exc:
            return exc.response()

    return endpoint


def _authenticate(request: Request) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    user = password = ""
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            user = password = ""
    good_user = hmac.compare_digest(user.encode(), CREDENTIALS[0].encode())
    good_password = hmac.compare_digest(password.encode(), CREDENTIALS[1].encode())
    if not (good_user and good_password):
        raise ODataError(
            401,
            "Logon failed: send HTTP Basic credentials of a user of client 100",
            headers={
                "WWW-Authenticate": 'Basic realm="SAP NetWeaver Application Server [S4H/100]"'
            },
        )


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


def _sessions(state: SandboxState) -> OrderedDict[str, str]:
    sessions = state.extra.setdefault("csrf_sessions", OrderedDict())
    assert isinstance(sessions, OrderedDict)
    return sessions


def _csrf_fetch(request: Request, state: SandboxState, response: Response) -> Response:
    """Answer ``X-CSRF-Token: Fetch``: the session's token, and the session cookie."""
    if request.headers.get("x-csrf-token", "").lower() != "fetch":
        return response
    sessions = _sessions(state)
    sid = request.cookies.get(SESSION_COOKIE, "")
    if sid not in sessions:
        sid = secrets.token_urlsafe(24)
        sessions[sid] = secrets.token_urlsafe(18)
        while len(sessions) > MAX_SESSIONS:
            sessions.popitem(last=False)
    response.headers["x-csrf-token"] = sessions[sid]
    response.set_cookie(SESSION_COOKIE, sid, path="/", httponly=True)
    response.headers.append("set-cookie", "sap-usercontext=sap-client=100; path=/")
    return response


def _check_csrf(request: Request, state: SandboxState) -> None:
    sid = request.cookies.get(SESSION_COOKIE, "")
    token = request.headers.get("x-csrf-token", "")
    expected = _sessions(state).get(sid)
    if expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
        raise _CsrfRequired


class _CsrfRequiredError(Exception):
    pass


_CsrfRequired = _CsrfRequiredError()


def _csrf_required() -> Response:
    # SAP answers a failed CSRF check in plain text, with the header clients key on
    return Response(
        "CSRF token validation failed",
        status_code=403,
        media_type="text/plain",
        headers={"x-csrf-token": "Required"},
    )


def _now_micros(state: SandboxState) -> int:
    """A strictly increasing change stamp, so two quick writes never share an ETag."""
    last = state.extra.get("clock", 0)
    assert isinstance(last, int)
    now = max(time.time_ns() // 1000, last + 1)
    state.extra["clock"] = now
    return now


def _lock(state: SandboxState) -> anyio.Lock:
    lock = state.extra.get("write_lock")
    if not isinstance(lock, anyio.Lock):
        lock = anyio.Lock()
        state.extra["write_lock"] = lock
    return lock


class _Lookup:
    """Navigation lookups for one request, indexed once per target set."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.index: dict[tuple[str, tuple[str, ...]], dict[tuple[Any, ...], list[Any]]] = {}

    def __call__(self, nav: Nav, doc: dict[str, Any]) -> list[dict[str, Any]]:
        cols = tuple(b for _, b in nav.link)
        slot = (nav.target, cols)
        if slot not in self.index:
            grouped: dict[tuple[Any, ...], list[Any]] = {}
            target = ENTITY_SETS[nav.target]
            for row in self.state.store.iter(nav.target):
                grouped.setdefault(tuple(row.get(c) for c in cols), []).append(row)
            for rows in grouped.values():
                rows.sort(key=target.key_of)
            self.index[slot] = grouped
        return self.index[slot].get(tuple(doc.get(a) for a, _ in nav.link), [])


def _renderer(request: Request, state: SandboxState) -> Renderer:
    base = f"{request.url.scheme}://{request.url.netloc}{ROOT}"
    return Renderer(base, _Lookup(state))


def _get(state: SandboxState, es: EntitySet, key: tuple[str, ...]) -> dict[str, Any]:
    doc = state.store.get(es.name, es.doc_id(key))
    if doc is None:
        shown = es.key_segment(key)
        raise ODataError(404, f"Resource not found for segment '{es.name}{shown}'")
    return doc


# ---------------------------------------------------------------------------- reads


async def service_document(request: Request, state: SandboxState) -> Response:
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
    return _csrf_fetch(request, state, response)


async def metadata(request: Request, state: SandboxState) -> Response:
    service = _service(request)
    response = Response(metadata_xml(service), media_type="application/xml")
    return _csrf_fetch(request, state, response)


async def resource(request: Request, state: SandboxState) -> Response:
    service = _service(request)
    target = parse_path(service, request.path_params["path"])
    method = request.method.upper()
    if method == "POST":
        tunnel = request.headers.get("x-http-method", "").upper()
        if tunnel:
            if tunnel not in ("MERGE", "PATCH", "PUT", "DELETE"):
                raise ODataError(405, f"X-HTTP-Method '{tunnel}' is not supported")
            method = tunnel
    if method in _WRITE_METHODS:
        try:
            _check_csrf(request, state)
        except _CsrfRequiredError:
            return _csrf_required()
        async with _lock(state):
            return await _write(request, state, target, method)
    response = await _read(request, state, target)
    return _csrf_fetch(request, state, response)


async def _read(request: Request, state: SandboxState, target: ResourcePath) -> Response:
    es = target.entity_set
    params = request.query_params.multi_items()
    if target.key is None:
        q = parse_query(es, params, single=False)
        return _collection(request, state, es, list(state.store.iter(es.name)), q, target.count)
    doc = _get(state, es, target.key)
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


# ---------------------------------------------------------------------------- writes


async def _body(request: Request) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ODataError(
            415,
            f"Content type '{ctype or '(none)'}' is not supported: send application/json",
        )
    raw = await request.body()
    if not raw.strip():
        raise ODataError(400, "The request body is empty: send the entity as a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ODataError(
            400,
            f"The Data Services Request could not be understood due to malformed syntax: {exc}",
        ) from exc


async def _write(
    request: Request, state: SandboxState, target: ResourcePath, method: str
) -> Response:
    es = target.entity_set
    if target.count:
        raise ODataError(405, f"Method {method} is not allowed on $count")
    if target.nav is not None:
        if method != "POST" or not target.nav.many or target.key is None:
            raise ODataError(405, f"Method {method} is not allowed on '{target.nav.name}'")
        parent = _get(state, es, target.key)
        child = ENTITY_SETS[target.nav.target]
        if child.name in _DEEP_ONLY:
            raise ODataError(405, f"'{child.name}' is created with its parent (deep insert)")
        body = await _body(request)
        if isinstance(body, dict):
            body = {**body, **{b: parent[a] for a, b in target.nav.link}}
        return await _create(request, state, child, body)
    if target.key is None:
        if method != "POST":
            raise ODataError(405, f"Method {method} is not allowed on the collection '{es.name}'")
        if not es.creatable or es.name in _DEEP_ONLY:
            raise ODataError(405, f"Entities of '{es.name}' cannot be created here")
        return await _create(request, state, es, await _body(request))
    if method == "POST":
        raise ODataError(405, "POST on a single entity needs X-HTTP-Method (MERGE, PUT, DELETE)")
    doc = _get(state, es, target.key)
    _check_etag(request, doc)
    if method == "DELETE":
        if not es.deletable:
            raise ODataError(405, f"Entities of '{es.name}' cannot be deleted")
        await _delete(state, es, doc)
        return Response(status_code=204)
    if not es.updatable:
        raise ODataError(405, f"Entities of '{es.name}' cannot be changed")
    body = await _body(request)
    changed = await _update(state, es, doc, body, replace=method == "PUT")
    return Response(status_code=204, headers={"ETag": etag_of(changed)})


def _check_etag(request: Request, doc: dict[str, Any]) -> None:
    given = request.headers.get("if-match")
    if given is None:
        raise ODataError(428, "Precondition required: send If-Match with the entity's ETag")
    if given.strip() == "*":
        return
    current = etag_of(doc)
    if not any(tag.strip() == current for tag in _split_etags(given)):
        raise ODataError(
            412,
            "Precondition failed: the entity was changed since it was read; read it again",
        )


def _split_etags(header: str) -> list[str]:
    tags: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            tags.append("".join(current))
            current = []
        else:
            current.append(ch)
    tags.append("".join(current))
    return tags


# ------------------------------------------------------------------ creates (deep inserts)


@dataclass(slots=True)
class _Planned:
    es: EntitySet
    doc: dict[str, Any]
    children: list[tuple[Nav, list[_Planned]]] = field(default_factory=list)


def _plan(es: EntitySet, body: Any, inherited: dict[str, Any], where: str = "") -> _Planned:
    """Validate one entity (and its deep-insert children) into a plan; no store access."""
    props, nested = check_payload(es, body, creating=True)
    for name, value in inherited.items():
        if name in props and props[name] not in (value, ""):
            raise ODataError(
                400,
                f"'{where}{name}' must match its parent ('{value}')",
                propertyref=name,
            )
        props[name] = value
    planned = _Planned(es, props)
    for nav_name, items in nested.items():
        nav = es.nav_map[nav_name]
        child_es = ENTITY_SETS[nav.target]
        children = [_plan(child_es, item, {}, f"{nav_name}/") for item in items]
        planned.children.append((nav, children))
    return planned


def _fill(state: SandboxState, planned: _Planned, number: str | None) -> None:
    """Server-set fields, defaults and business rules, in place; still no store writes."""
    es, doc = planned.es, planned.doc
    now = _now_micros(state)
    today = now // 86_400_000_000 * 86_400_000
    doc["_changed"] = now
    if number is not None:
        doc[es.keys[0]] = number
    for prop in es.props:
        if prop.type == "Edm.DateTime" and not prop.creatable:
            doc[prop.name] = today
        elif prop.type == "Edm.DateTimeOffset":
            doc[prop.name] = now // 1000
    _RULES.get(es.name, _no_rule)(state, planned)
    for nav, children in planned.children:
        for n, child in enumerate(children, 1):
            for a, b in nav.link:
                child.doc[b] = doc[a]
            _CHILD_KEYS.get(child.es.name, _no_rule_n)(child.doc, n)
            _fill(state, child, None)
    for key in es.keys:
        if not doc.get(key):
            raise ODataError(
                400, f"Key property '{key}' of '{es.name}' is missing", propertyref=key
            )
    for prop in es.props:
        doc.setdefault(prop.name, None)


def _no_rule(state: SandboxState, planned: _Planned) -> None:
    return None


def _no_rule_n(doc: dict[str, Any], n: int) -> None:
    return None


def _item_key(doc: dict[str, Any], n: int) -> None:
    doc.setdefault("SalesOrderItem", str(n * 10))


def _address_key(doc: dict[str, Any], n: int) -> None:
    doc.setdefault("AddressID", str(n))


def _sales_area_key(doc: dict[str, Any], n: int) -> None:
    for key, value in SALES_AREA.items():
        doc.setdefault(key, value)


_CHILD_KEYS: dict[str, Callable[[dict[str, Any], int], None]] = {
    "A_SalesOrderItem": _item_key,
    "A_BusinessPartnerAddress": _address_key,
    "A_CustomerSalesArea": _sales_area_key,
}


def _require(doc: dict[str, Any], es: EntitySet, *names: str) -> None:
    for name in names:
        if doc.get(name) in (None, ""):
            raise ODataError(400, f"Property '{name}' of '{es.name}' is required", propertyref=name)


def _business_partner_rule(state: SandboxState, planned: _Planned) -> None:
    doc = planned.doc
    doc.setdefault("BusinessPartnerCategory", "2")
    if doc["BusinessPartnerCategory"] not in ("1", "2", "3"):
        raise ODataError(
            400,
            "BusinessPartnerCategory must be 1 (person), 2 (organisation) or 3 (group)",
            propertyref="BusinessPartnerCategory",
        )
    name = (doc.get("OrganizationBPName1") or doc.get("BusinessPartnerFullName") or "").strip()
    if not name:
        raise ODataError(
            400,
            "An organisation needs OrganizationBPName1 (or BusinessPartnerFullName)",
            propertyref="OrganizationBPName1",
        )
    doc.setdefault("OrganizationBPName1", name[:40])
    doc.setdefault("BusinessPartnerFullName", name)
    doc.setdefault("SearchTerm1", name.split()[0].upper()[:20])
    doc.setdefault("BusinessPartnerGrouping", "BP02")
    doc.setdefault("BusinessPartnerIsBlocked", False)
    doc.setdefault("Language", "EN")
    has_customer = any(nav.name == "to_Customer" for nav, _ in planned.children)
    doc["Customer"] = doc["BusinessPartner"] if has_customer else ""
    for nav, children in planned.children:
        if nav.name == "to_Customer":
            for child in children:
                child.doc.setdefault("CustomerName", name[:80])
                child.doc.setdefault("CustomerFullName", name)


def _customer_rule(state: SandboxState, planned: _Planned) -> None:
    doc = planned.doc
    doc.setdefault("CustomerAccountGroup", "CUST")
    for flag in ("OrderIsBlockedForCustomer", "DeliveryIsBlocked", "BillingIsBlockedForCustomer"):
        doc.setdefault(flag, "")
    doc.setdefault("PostingIsBlocked", False)
    doc.setdefault("DeletionIndicator", False)


def _sales_order_rule(state: SandboxState, planned: _Planned) -> None:
    doc, es = planned.doc, planned.es
    _require(doc, es, "SalesOrderType", "SoldToParty")
    if state.store.get("A_Customer", doc["SoldToParty"]) is None:
        raise ODataError(
            400,
            f"Sold-to party {doc['SoldToParty']} is not a customer",
            propertyref="SoldToParty",
        )
    items = [c for nav, children in planned.children if nav.name == "to_Item" for c in children]
    if not items:
        raise ODataError(
            400, "A sales order needs at least one item (to_Item)", propertyref="to_Item"
        )
    doc.setdefault("SalesOrganization", SALES_AREA["SalesOrganization"])
    doc.setdefault("DistributionChannel", SALES_AREA["DistributionChannel"])
    doc.setdefault("OrganizationDivision", SALES_AREA["Division"])
    doc.setdefault("TransactionCurrency", "EUR")
    doc["OverallSDProcessStatus"] = "A"
    if not doc.get("CustomerPaymentTerms"):
        area_id = "\x1f".join((doc["SoldToParty"], *SALES_AREA.values()))
        area = state.store.get("A_CustomerSalesArea", area_id) or {}
        doc["CustomerPaymentTerms"] = area.get("CustomerPaymentTerms") or ""
    total = Decimal("0.00")
    for item in items:
        item.doc["TransactionCurrency"] = doc["TransactionCurrency"]
        total += _price_item(item)
    doc["TotalNetAmount"] = str(total)


def _price_item(item: _Planned) -> Decimal:
    doc, es = item.doc, item.es
    _require(doc, es, "Material", "RequestedQuantity")
    price = MATERIAL_PRICES.get(doc["Material"])
    if price is None:
        raise ODataError(400, f"Material {doc['Material']} does not exist", propertyref="Material")
    quantity = Decimal(doc["RequestedQuantity"])
    if not 0 < quantity < 1_000_000_000:
        raise ODataError(
            400, "RequestedQuantity must be above 0 and below 1e9", propertyref="RequestedQuantity"
        )
    doc["RequestedQuantity"] = str(quantity.quantize(Decimal("0.001")))
    amount = (price[0] * quantity).quantize(Decimal("0.01"))
    doc["NetAmount"] = str(amount)
    doc.setdefault("SalesOrderItemCategory", "TAN")
    doc.setdefault("SalesOrderItemText", price[1])
    doc.setdefault("RequestedQuantityUnit", "EA")
    return amount


def _billing_document_rule(state: SandboxState, planned: _Planned) -> None:
    doc, es = planned.doc, planned.es
    _require(doc, es, "SoldToParty", "TotalNetAmount")
    if state.store.get("A_Customer", doc["SoldToParty"]) is None:
        raise ODataError(
            400,
            f"Sold-to party {doc['SoldToParty']} is not a customer",
            propertyref="SoldToParty",
        )
    doc.setdefault("TaxAmount", "0.00")
    doc.setdefault("AccountingPostingStatus", "C")
    _check_posting_status(doc)
    doc["TotalGrossAmount"] = str(Decimal(doc["TotalNetAmount"]) + Decimal(doc["TaxAmount"]))
    doc.setdefault("BillingDocumentType", "F2")
    doc.setdefault("SDDocumentCategory", "M")
    for key, value in SALES_AREA.items():
        doc.setdefault(key, value)
    doc.setdefault("CompanyCode", "1010")
    doc.setdefault("PayerParty", doc["SoldToParty"])
    doc.setdefault("TransactionCurrency", "EUR")
    doc.setdefault("BillingDocumentIsCancelled", False)
    doc.setdefault("BillingDocumentDate", doc["CreationDate"])


def _check_posting_status(doc: dict[str, Any]) -> None:
    if doc.get("AccountingPostingStatus") not in ("A", "B", "C"):
        raise ODataError(
            400,
            "AccountingPostingStatus must be A (not posted), B (not completed) or C (posted)",
            propertyref="AccountingPostingStatus",
        )


def _bp_child_rule(state: SandboxState, planned: _Planned) -> None:
    es, doc = planned.es, planned.doc
    if es.name == "A_BusinessPartnerTaxNumber":
        _require(doc, es, "BPTaxType", "BPTaxNumber")


_RULES: dict[str, Callable[[SandboxState, _Planned], None]] = {
    "A_BusinessPartner": _business_partner_rule,
    "A_Customer": _customer_rule,
    "A_SalesOrder": _sales_order_rule,
    "A_BillingDocument": _billing_document_rule,
    "A_BusinessPartnerTaxNumber": _bp_child_rule,
}


def _flatten(planned: _Planned) -> list[_Planned]:
    out = [planned]
    for _, children in planned.children:
        for child in children:
            out.extend(_flatten(child))
    return out


async def _create(request: Request, state: SandboxState, es: EntitySet, body: Any) -> Response:
    planned = _plan(es, body, {})
    number: str | None = None
    given = planned.doc.get(es.keys[0]) if len(es.keys) == 1 else None
    if es.number_range is not None and not given:
        if planned.doc.get(es.keys[0]) == "":
            planned.doc.pop(es.keys[0])
        number = str(await state.store.next_number(*es.number_range))
    if es.name in ("A_BusinessPartnerAddress", "A_BusinessPartnerTaxNumber"):
        parent = planned.doc.get("BusinessPartner")
        if not parent or state.store.get("A_BusinessPartner", parent) is None:
            raise ODataError(
                400, f"Business partner {parent or '(none)'} does not exist",
                propertyref="BusinessPartner",
            )  # fmt: skip
        if es.name == "A_BusinessPartnerAddress" and not planned.doc.get("AddressID"):
            taken = {
                r["AddressID"] for r in state.store.iter(es.name) if r["BusinessPartner"] == parent
            }
            planned.doc["AddressID"] = str(
                next(n for n in range(1, len(taken) + 2) if str(n) not in taken)
            )
    _fill(state, planned, number)
    rows = _flatten(planned)
    for row in rows:
        if state.store.get(row.es.name, row.es.doc_id(row.es.key_of(row.doc))) is not None:
            shown = row.es.name + row.es.key_segment(row.es.key_of(row.doc))
            raise ODataError(409, f"Entity {shown} already exists", propertyref=row.es.keys[0])
    for row in rows:
        await state.store.put(row.es.name, row.es.doc_id(row.es.key_of(row.doc)), row.doc)
    _publish_change(state, es, planned.doc, created=True)
    renderer = _renderer(request, state)
    expand = tuple(
        path for nav, _ in planned.children for path in _deep_paths(nav, planned.children)
    )
    entity = renderer.entity(es, planned.doc, expand=tuple(dict.fromkeys(expand)))
    uri = renderer.uri(es, planned.doc)
    return _json({"d": entity}, status=201, headers={"Location": uri, "ETag": etag_of(planned.doc)})


def _deep_paths(nav: Nav, children: list[tuple[Nav, list[_Planned]]]) -> list[tuple[str, ...]]:
    """The $expand paths that show what a deep insert created."""
    paths: list[tuple[str, ...]] = []
    for child_nav, planned_children in children:
        if child_nav is not nav:
            continue
        paths.append((nav.name,))
        for child in planned_children:
            for grand_nav, _ in child.children:
                for sub in _deep_paths(grand_nav, child.children):
                    paths.append((nav.name, *sub))
    return paths


# ------------------------------------------------------------------ updates and deletes


async def _update(
    state: SandboxState, es: EntitySet, doc: dict[str, Any], body: Any, *, replace: bool
) -> dict[str, Any]:
    props, _ = check_payload(es, body, creating=False, allow_navs=False)
    for key in es.keys:
        if key in props and props.pop(key) != doc[key]:
            raise ODataError(400, f"Key property '{key}' cannot be changed", propertyref=key)
    new = dict(doc)
    if replace:
        for prop in es.props:
            if prop.updatable and prop.name not in es.keys:
                new[prop.name] = None
    new.update(props)
    category = new.get("BusinessPartnerCategory")
    if es.name == "A_BusinessPartner" and category not in ("1", "2", "3"):
        raise ODataError(
            400,
            "BusinessPartnerCategory must be 1, 2 or 3",
            propertyref="BusinessPartnerCategory",
        )
    if es.name == "A_BillingDocument":
        _check_posting_status(new)
        try:
            net = Decimal(new.get("TotalNetAmount") or "0")
            tax = Decimal(new.get("TaxAmount") or "0")
        except ArithmeticError as exc:
            raise ODataError(400, "Invalid amounts", propertyref="TotalNetAmount") from exc
        new["TotalGrossAmount"] = str(net + tax)
    now = _now_micros(state)
    new["_changed"] = now
    if "LastChangeDate" in es.prop_map:
        new["LastChangeDate"] = now // 86_400_000_000 * 86_400_000
    if "LastChangeDateTime" in es.prop_map:
        new["LastChangeDateTime"] = now // 1000
    await state.store.put(es.name, es.doc_id(es.key_of(doc)), new)
    _publish_change(state, es, new, created=False)
    return new


async def _delete(state: SandboxState, es: EntitySet, doc: dict[str, Any]) -> None:
    key = es.key_of(doc)
    for nav in es.navs:
        if nav.many:
            for row in _Lookup(state)(nav, doc):
                target = ENTITY_SETS[nav.target]
                await state.store.delete(target.name, target.doc_id(target.key_of(row)))
    await state.store.delete(es.name, es.doc_id(key))
    _publish_change(state, es, doc, created=False)


# ---------------------------------------------------------------------------- events


def _publish_change(
    state: SandboxState, es: EntitySet, doc: dict[str, Any], *, created: bool
) -> None:
    if es.name == "A_BillingDocument":
        if created:
            _publish(state, BILLING_DOCUMENT_CREATED, {"BillingDocument": doc["BillingDocument"]})
        return
    field_name = _BP_FAMILY.get(es.name)
    if field_name is not None:
        _publish(state, BUSINESS_PARTNER_CHANGED, {"BusinessPartner": doc[field_name]})


def _publish(state: SandboxState, event_type: str, data: dict[str, str]) -> None:
    """Queue one CloudEvent (keys only: the consumer reads the record back)."""
    event = {
        "specversion": "1.0",
        "type": event_type,
        "source": EVENT_SOURCE,
        "id": str(uuid.uuid4()),
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": data,
    }
    state.webhooks.publish(orjson.dumps(event))


# ---------------------------------------------------------------------------- routing


def routes(limit: RateLimit, dialect: ErpDialect, page_size: int = PAGE_SIZE) -> list[BaseRoute]:
    """The three services' routes, behind the rate limit, with ``page_size`` server paging."""
    methods = ["GET", "POST", "PUT", "PATCH", "MERGE", "DELETE"]
    return [
        Route(f"{ROOT}/{{service}}", _guarded(limit, dialect, page_size, service_document)),
        Route(f"{ROOT}/{{service}}/", _guarded(limit, dialect, page_size, service_document)),
        Route(f"{ROOT}/{{service}}/$metadata", _guarded(limit, dialect, page_size, metadata)),
        Route(
            f"{ROOT}/{{service}}/{{path:path}}",
            _guarded(limit, dialect, page_size, resource),
            methods=methods,
        ),
    ]
