"""The ERP connector: SAP S/4HANA OData V2 <-> the canonical model.

Customers are business partners (``API_BUSINESS_PARTNER``) read with their address, tax
number and customer sales area expanded; orders are ``A_SalesOrder`` with ``to_Item``;
invoices are ``A_BillingDocument``; credits are ``A_CreditMemoRequest``
(``API_CREDIT_MEMO_REQUEST_SRV``). Batched reads put many keys in one ``$filter`` as an
``or`` chain (``SoldToParty eq 'a' or SoldToParty eq 'b'``), chunked so each URL stays
under ~6 KB, and follow the server's ``__next`` links to the end. When the keys need
several chunks, the chunks' first pages go out as one OData ``$batch`` request to the
service (``actors.odata_batch``); each part's answer is read as its single GET would be.

SAP's protocol rules, handled here because the protocol demands the second call:

- writes carry the CSRF token fetched with ``X-CSRF-Token: Fetch`` and the session cookie
  that came with it; a 403 with ``x-csrf-token: Required`` fetches a new token once;
- changes to existing entities send ``If-Match`` with the entity's ETag; a 412 re-reads
  the entity and tries once more;
- SAP has no idempotency header: creates check first (``BusinessPartnerIDByExtSystem``
  for partners, ``PurchaseOrderByCustomer`` for sales orders and credit memo requests), so
  a repeated message finds what the first one made.

Answers map to ``actors.errors``: 503 with ``Retry-After`` -> Throttled; other 5xx ->
SystemUnavailable; 404 -> NotFound; 409 and a second 412 -> Conflict; 400 -> Rejected
naming the ``propertyref`` fields; an unreadable body -> MalformedResponse.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from http.cookies import CookieError, SimpleCookie
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote, urlencode, urljoin

import anyio

from actors.connector import Endpoint, HttpConnector, Response, retry_after_seconds
from actors.errors import (
    Conflict,
    LimitExceeded,
    MalformedResponse,
    NotFound,
    Rejected,
    SystemUnavailable,
    Throttled,
)
from actors.messages import (
    ChangedRecord,
    ChangePage,
    EnsureBillingDocument,
    EnsureCreditMemoRequest,
    EnsureCustomer,
    EnsureSalesOrder,
    FindCustomerByXRef,
    FindCustomers,
    FindCustomersByTaxId,
    GetBillingDocument,
    GetBillingDocuments,
    GetChanges,
    GetCustomers,
    GetOrders,
    ListCustomers,
    Message,
    Page,
    UpdateCustomer,
)
from actors.odata_batch import BatchFormatError, build_get_batch, parse_batch_answer
from canonical.models import Customer, Invoice, Order, OrderItem, System, XRef

__all__ = ["ErpConnector", "or_chunks"]

T = TypeVar("T")

ROOT = "/sap/opu/odata/sap"
BP = f"{ROOT}/API_BUSINESS_PARTNER"
SO = f"{ROOT}/API_SALES_ORDER_SRV"
BD = f"{ROOT}/API_BILLING_DOCUMENT_SRV"
CMR = f"{ROOT}/API_CREDIT_MEMO_REQUEST_SRV"
#: what a customer read expands: address (country), tax number, sales area (terms, currency)
CUSTOMER_EXPAND = "to_BusinessPartnerAddress,to_BusinessPartnerTax,to_Customer/to_CustomerSalesArea"
#: the sales area whose terms and currency are the customer's
SALES_AREA = {"SalesOrganization": "1010", "DistributionChannel": "10", "Division": "00"}
#: encoded $filter budget per request: SAP Gateway and proxies refuse URLs past ~8 KB
FILTER_BUDGET = 6000
#: chunks whose first pages go out in one $batch; SAP Gateway, like the sandbox, caps the
#: parts of a batch
BATCH_PARTS = 100
#: canonical customer fields the ERP keeps, and the entity that keeps each
UPDATABLE = {
    "name": "partner",
    "legal_name": "partner",
    "payment_terms": "sales_area",
    "currency": "sales_area",
    "tax_id": "tax",
    "country": "address",
    "credit_status": "customer",
}


#: what stays unencoded in a batch part's query, as in a single GET's: OData's own syntax
_QUERY_SAFE = "$'(),/"


def _literal(value: str) -> str:
    """An OData string literal: quotes doubled, so a value can never end the literal."""
    return "'" + value.replace("'", "''") + "'"


def _key_path(entity_set: str, key: str) -> str:
    return f"{entity_set}({quote(_literal(key), safe=chr(39))})"


def or_chunks(field: str, values: Iterable[str], budget: int = FILTER_BUDGET) -> list[str]:
    """``field eq 'a' or field eq 'b' ...`` filters, each under ``budget`` encoded bytes."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    joiner = len(quote(" or "))
    for value in dict.fromkeys(values):
        clause = f"{field} eq {_literal(value)}"
        cost = len(quote(clause, safe="")) + joiner
        if current and size + cost > budget:
            chunks.append(" or ".join(current))
            current, size = [], 0
        current.append(clause)
        size += cost
    if current:
        chunks.append(" or ".join(current))
    return chunks


def _split_name(name: str) -> tuple[str, str]:
    """SAP keeps an organisation's name in 40-character parts (Name1, Name2 ...)."""
    return name[:40], name[40:80]


class ErpConnector(HttpConnector):
    """SAP S/4HANA OData V2 for the ERP actor: partners, sales orders, billing documents."""

    system = System.ERP

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint)
        user = endpoint.credentials.get("username", "")
        password = endpoint.credentials.get("password", "")
        self._authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._csrf: str | None = None
        self._csrf_lock = anyio.Lock()
        # SAP binds the CSRF token to the session cookie. Kept here rather than in aiohttp's
        # jar, which ignores cookies from IP-address hosts such as the loopback sandbox.
        self._cookies: dict[str, str] = {}

    # ------------------------------------------------------------------ dispatch

    async def handle(self, message: Message) -> object:
        match message:
            case GetCustomers(ids=ids):
                return await self._get_customers(ids)
            case FindCustomers(text=text, limit=limit):
                return await self._find_customers(text, limit)
            case FindCustomersByTaxId(tax_id=tax_id):
                return await self._customers_by_tax_id(tax_id)
            case ListCustomers(cursor=cursor, limit=limit):
                return await self._list_customers(cursor, limit)
            case FindCustomerByXRef(erp_bp=erp_bp):
                return await self._customer_by_bp(erp_bp)
            case GetOrders(customer_ids=ids):
                return await self._get_orders(ids)
            case GetBillingDocuments(customer_ids=ids):
                return await self._get_billing_documents(ids)
            case GetBillingDocument(id=doc_id):
                return await self._get_billing_document(doc_id)
            case GetChanges(feed=feed, cursor=cursor):
                return await self._changes(feed, cursor)
            case EnsureCustomer():
                return await self._ensure_customer(message)
            case UpdateCustomer():
                return await self._update_customer(message)
            case EnsureSalesOrder():
                return await self._ensure_sales_order(message)
            case EnsureBillingDocument():
                return await self._ensure_billing_document(message)
            case EnsureCreditMemoRequest():
                return await self._ensure_credit_memo_request(message)
            case _:
                raise TypeError(
                    f"The ERP connector does not handle {type(message).__name__}; "
                    "send it to the actor of the system that owns it"
                )

    async def _ping(self) -> None:
        response = await self._call("GET", f"{BP}/", params=[("$format", "json")])
        if response.status != 200:
            self._fail(response, "service document")

    # ------------------------------------------------------------------ reads

    async def _get_customers(self, ids: Sequence[str]) -> dict[str, Customer]:
        rows = await self._batched(BP, "A_BusinessPartner", "BusinessPartner", ids, CUSTOMER_EXPAND)
        return {row["BusinessPartner"]: self._customer(row) for row in rows}

    async def _find_customers(self, text: str, limit: int) -> tuple[Customer, ...]:
        expression = f"substringof({_literal(text.lower())},tolower(BusinessPartnerFullName))"
        params = [
            ("$filter", expression),
            ("$top", str(max(0, limit))),
            ("$expand", CUSTOMER_EXPAND),
            ("$orderby", "BusinessPartner"),
            ("$format", "json"),
        ]
        rows, _ = await self._walk(f"{BP}/A_BusinessPartner", params)
        return tuple(self._customer(row) for row in rows)

    async def _customers_by_tax_id(self, tax_id: str) -> tuple[Customer, ...]:
        wanted = tax_id.replace(" ", "").replace(".", "").upper()
        params = [
            ("$filter", f"BPTaxNumber eq {_literal(wanted)}"),
            ("$select", "BusinessPartner,BPTaxNumber"),
            ("$format", "json"),
        ]
        rows, _ = await self._walk(f"{BP}/A_BusinessPartnerTaxNumber", params)
        ids = sorted({str(row["BusinessPartner"]) for row in rows if row.get("BusinessPartner")})
        found = await self._get_customers(ids) if ids else {}
        return tuple(found[i] for i in ids if i in found)

    async def _list_customers(self, cursor: str | None, limit: int) -> Page[Customer]:
        if cursor is not None and not cursor.isdigit():
            raise Rejected(self.system, f"cursor {cursor!r} was not made by the ERP connector")
        skip = int(cursor or 0)
        params = [
            ("$skip", str(skip)),
            ("$top", str(max(1, limit))),
            ("$orderby", "BusinessPartner"),
            ("$expand", CUSTOMER_EXPAND),
            ("$inlinecount", "allpages"),
            ("$format", "json"),
        ]
        rows, count = await self._walk(f"{BP}/A_BusinessPartner", params)
        end = skip + len(rows)
        more = rows and (count is None or end < count)
        return Page(tuple(self._customer(r) for r in rows), str(end) if more else None)

    async def _customer_by_bp(self, bp: str) -> Customer | None:
        path = f"{BP}/{_key_path('A_BusinessPartner', bp)}"
        response = await self._call("GET", path, params=[("$expand", CUSTOMER_EXPAND)])
        if response.status == 404:
            return None
        return self._customer(self._entity(response, f"business partner {bp}"))

    async def _get_orders(self, customer_ids: Sequence[str]) -> dict[str, tuple[Order, ...]]:
        rows = await self._batched(SO, "A_SalesOrder", "SoldToParty", customer_ids, "to_Item")
        grouped: dict[str, list[Order]] = {}
        for row in rows:
            order = self._order(row)
            grouped.setdefault(order.customer_id, []).append(order)
        return {k: tuple(v) for k, v in grouped.items()}

    async def _get_billing_documents(
        self, customer_ids: Sequence[str]
    ) -> dict[str, tuple[Invoice, ...]]:
        rows = await self._batched(BD, "A_BillingDocument", "SoldToParty", customer_ids, None)
        grouped: dict[str, list[Invoice]] = {}
        for row in rows:
            invoice = self._invoice(row)
            grouped.setdefault(invoice.customer_id, []).append(invoice)
        return {k: tuple(v) for k, v in grouped.items()}

    async def _get_billing_document(self, doc_id: str) -> Invoice:
        response = await self._call("GET", f"{BD}/{_key_path('A_BillingDocument', doc_id)}")
        return self._invoice(self._entity(response, f"billing document {doc_id}"))

    async def _batched(
        self,
        service: str,
        entity_set: str,
        key: str,
        values: Sequence[str],
        expand: str | None,
    ) -> list[dict[str, Any]]:
        """Every record whose ``key`` is one of ``values``: one ``or`` filter per chunk,
        several chunks' first pages in one ``$batch``, then each chunk's ``__next`` links."""
        path = f"{service}/{entity_set}"
        queries = []
        for expression in or_chunks(key, values):
            params = [("$filter", expression), ("$format", "json")]
            if expand:
                params.append(("$expand", expand))
            queries.append(params)
        rows: list[dict[str, Any]] = []
        if len(queries) == 1:
            found, _ = await self._walk(path, queries[0])
            return found
        for start in range(0, len(queries), BATCH_PARTS):
            group = queries[start : start + BATCH_PARTS]
            firsts = await self._first_pages(service, entity_set, group)
            if firsts is None:
                for params in group:
                    found, _ = await self._walk(path, params)
                    rows.extend(found)
                continue
            for first in firsts:
                found, _ = await self._follow(path, first)
                rows.extend(found)
        return rows

    async def _first_pages(
        self, service: str, entity_set: str, queries: list[list[tuple[str, str]]]
    ) -> list[Response] | None:
        """The answers to one GET per query, read through one ``$batch`` request; None
        when the answers together pass ``max_body_bytes`` (each is then read on its own,
        under the same bound)."""
        urls = [f"{entity_set}?{urlencode(q, quote_via=quote, safe=_QUERY_SAFE)}" for q in queries]
        content_type, body = build_get_batch(urls, headers={"Accept": "application/json"})
        what = f"$batch of {len(urls)} reads of {entity_set}"
        try:
            response = await self._call(
                "POST",
                f"{service}/$batch",
                data=body,
                headers={"Content-Type": content_type, "Accept": "multipart/mixed"},
            )
        except LimitExceeded:
            return None
        if response.status not in (200, 202):
            self._fail(response, what)
        try:
            parts = parse_batch_answer(response.headers.get("Content-Type", ""), response.body)
        except BatchFormatError as exc:
            raise MalformedResponse(self.system, f"{what}: {exc}", status=response.status) from exc
        if len(parts) != len(urls):
            raise MalformedResponse(
                self.system, f"{what} answered {len(parts)} parts", status=response.status
            )
        return [Response(part.status, part.headers, part.body) for part in parts]

    async def _walk(
        self, path: str, params: list[tuple[str, str]]
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Read a collection to its end through the server's ``__next`` links."""
        return await self._follow(path, await self._call("GET", path, params=params))

    async def _follow(
        self, path: str, response: Response
    ) -> tuple[list[dict[str, Any]], int | None]:
        """The rows of ``response``, a first page of ``path``, and of the pages after it."""
        rows: list[dict[str, Any]] = []
        count: int | None = None
        for page in range(1, self.endpoint.max_pages + 1):
            if response.status != 200:
                self._fail(response, f"GET {path}")
            d = self._d(response)
            results = d.get("results")
            if not isinstance(results, list):
                raise MalformedResponse(self.system, f"{path} answered no results list")
            rows.extend(results)
            if count is None and "__count" in d:
                try:
                    count = int(d["__count"])
                except (TypeError, ValueError) as exc:
                    raise MalformedResponse(self.system, f"bad __count {d['__count']!r}") from exc
            following = d.get("__next")
            if not following:
                return rows, count
            if page == self.endpoint.max_pages:
                break
            # __next carries every option; relative links resolve against the service
            response = await self._call("GET", urljoin(self.endpoint.base_url + path, following))
        raise self.paging_limit(f"GET {path}")

    # ------------------------------------------------------------------ change feeds

    async def _changes(self, feed: str, cursor: str | None) -> ChangePage:
        """OData filters on the change time: sales orders and billing documents by
        ``LastChangeDateTime ge datetimeoffset'...'``, business partners by
        ``LastChangeDate ge datetime'...'`` (a day: SAP keeps the time apart). No cursor
        reads every record (the initial load). ``ge``, not ``gt``: records of the
        cursor's own instant are read again rather than missed."""
        started = int(time.time() * 1000)
        if feed == "customers":
            params = [("$expand", CUSTOMER_EXPAND), ("$format", "json")]
            if cursor is not None:
                day = cursor.removeprefix("d:")
                if not (cursor.startswith("d:") and len(day) == 10):
                    raise Rejected(self.system, f"cursor {cursor!r} was not made by this connector")
                params.append(("$filter", f"LastChangeDate ge datetime'{day}T00:00:00'"))
            rows, _ = await self._walk(f"{BP}/A_BusinessPartner", params)
            customers = tuple(self._customer(row) for row in rows)
            found = tuple(ChangedRecord("customer", c.id, c.id, c) for c in customers)
            # partners of the pass's own day are read again next pass: none is missed
            today = datetime.fromtimestamp(started / 1000, UTC).date().isoformat()
            return ChangePage(found, f"d:{today}", False)
        where = {
            "orders": (SO, "A_SalesOrder", "to_Item"),
            "billing_documents": (BD, "A_BillingDocument", None),
        }.get(feed)
        if where is None:
            raise Rejected(self.system, f"the ERP has no change feed {feed!r}")
        service, entity_set, expand = where
        params = [("$format", "json")]
        if expand:
            params.append(("$expand", expand))
        since = 0
        if cursor is not None:
            if not (cursor.startswith("ms:") and cursor[3:].isdigit()):
                raise Rejected(self.system, f"cursor {cursor!r} was not made by this connector")
            since = int(cursor[3:])
            moment = datetime.fromtimestamp(since / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
            params.append(("$filter", f"LastChangeDateTime ge datetimeoffset'{moment[:-3]}Z'"))
        rows, _ = await self._walk(f"{service}/{entity_set}", params)
        newest = since
        records: list[ChangedRecord] = []
        for row in rows:
            newest = max(newest, _millis(row.get("LastChangeDateTime")))
            if feed == "orders":
                order = self._order(row)
                records.append(ChangedRecord("order", order.id, order.customer_id, order))
            else:
                doc = self._invoice(row)
                records.append(ChangedRecord("billing_document", doc.id, doc.customer_id, doc))
        if not rows and cursor is None:
            newest = started
        return ChangePage(tuple(records), f"ms:{newest}", False)

    # ------------------------------------------------------------------ writes

    async def _ensure_customer(self, message: EnsureCustomer) -> Customer:
        external_id = message.external_id
        found, _ = await self._walk(
            f"{BP}/A_BusinessPartner",
            [
                ("$filter", f"BusinessPartnerIDByExtSystem eq {_literal(external_id)}"),
                ("$expand", CUSTOMER_EXPAND),
                ("$format", "json"),
            ],
        )
        if found:
            return self._customer(found[0])
        c = message.customer
        name1, name2 = _split_name(c.legal_name or c.name)
        body: dict[str, Any] = {
            "BusinessPartnerCategory": "2",
            "BusinessPartnerFullName": c.name,
            "OrganizationBPName1": name1,
            "OrganizationBPName2": name2,
            "BusinessPartnerIDByExtSystem": external_id,
        }
        if c.country:
            body["to_BusinessPartnerAddress"] = {"results": [{"Country": c.country}]}
        if c.tax_id:
            if not c.country:
                raise Rejected(
                    self.system,
                    "a tax number needs the customer's country (its tax category)",
                    details={"country": "required with tax_id"},
                )
            tax = {"BPTaxType": f"{c.country}0", "BPTaxNumber": c.tax_id}
            body["to_BusinessPartnerTax"] = {"results": [tax]}
        area: dict[str, Any] = dict(SALES_AREA)
        if c.payment_terms:
            area["CustomerPaymentTerms"] = c.payment_terms
        if c.currency:
            area["Currency"] = c.currency
        body["to_Customer"] = {"to_CustomerSalesArea": {"results": [area]}}
        response = await self._write("POST", f"{BP}/A_BusinessPartner", json=body)
        if response.status != 201:
            self._fail(response, "create business partner")
        return self._customer(self._d(response))

    async def _update_customer(self, message: UpdateCustomer) -> Customer:
        unknown = sorted(set(message.changes) - set(UPDATABLE))
        if unknown:
            raise Rejected(
                self.system,
                f"the ERP does not keep {', '.join(unknown)}; send those to their owner",
                details={name: "not kept by the ERP" for name in unknown},
            )
        current = await self._customer_entity(message.id)
        patches = self._patches(current, message.changes)
        for target, (uri, etag, fields) in patches.items():
            if uri is None:
                await self._create_part(message.id, target, current, fields)
            else:
                await self._merge(uri, etag, fields)
        return self._customer(await self._customer_entity(message.id))

    async def _customer_entity(self, bp: str) -> dict[str, Any]:
        path = f"{BP}/{_key_path('A_BusinessPartner', bp)}"
        response = await self._call("GET", path, params=[("$expand", CUSTOMER_EXPAND)])
        return self._entity(response, f"business partner {bp}")

    def _patches(
        self, entity: dict[str, Any], changes: Mapping[str, str | None]
    ) -> dict[str, tuple[str | None, str | None, dict[str, Any]]]:
        """Per target entity: (its uri or None to create it, its ETag, the fields to set)."""
        parts = _Parts(entity)
        out: dict[str, tuple[str | None, str | None, dict[str, Any]]] = {}

        def put(target: str, part: dict[str, Any] | None, fields: dict[str, Any]) -> None:
            uri, etag = (_meta(part, "uri"), _meta(part, "etag")) if part else (None, None)
            out.setdefault(target, (uri, etag, {}))[2].update(fields)

        for name, value in changes.items():
            text = value or ""
            match name:
                case "name":
                    put("partner", entity, {"BusinessPartnerFullName": text})
                    if "legal_name" not in changes:
                        name1, name2 = _split_name(text)
                        put("partner", entity, {"OrganizationBPName1": name1})
                        put("partner", entity, {"OrganizationBPName2": name2})
                case "legal_name":
                    name1, name2 = _split_name(text)
                    put("partner", entity, {"OrganizationBPName1": name1})
                    put("partner", entity, {"OrganizationBPName2": name2})
                case "payment_terms":
                    put("sales_area", parts.sales_area, {"CustomerPaymentTerms": text})
                case "currency":
                    put("sales_area", parts.sales_area, {"Currency": text})
                case "tax_id":
                    put("tax", parts.tax, {"BPTaxNumber": text})
                case "country":
                    put("address", parts.address, {"Country": text})
                case "credit_status":
                    if text not in ("ok", "blocked"):
                        raise Rejected(
                            self.system,
                            f"credit_status {text!r} is not one the ERP can set (ok, blocked)",
                            details={"credit_status": "expected ok or blocked"},
                        )
                    block = "01" if text == "blocked" else ""
                    put("customer", parts.customer, {"OrderIsBlockedForCustomer": block})
        return out

    async def _create_part(
        self, bp: str, target: str, entity: dict[str, Any], fields: dict[str, Any]
    ) -> None:
        """Add the entity a change needs when the partner lacks it (tax number, address)."""
        partner = _key_path("A_BusinessPartner", bp)
        if target == "tax":
            country = fields.get("Country") or _Parts(entity).country
            if not country:
                raise Rejected(
                    self.system,
                    f"business partner {bp} has no country to choose the tax category from",
                    details={"country": "required with tax_id"},
                )
            body = {"BPTaxType": f"{country}0", **fields}
            path = f"{BP}/{partner}/to_BusinessPartnerTax"
        elif target == "address":
            body = dict(fields)
            path = f"{BP}/{partner}/to_BusinessPartnerAddress"
        else:
            raise Rejected(
                self.system,
                f"business partner {bp} is not a customer of sales area 1010/10/00; "
                "extend it to that sales area in the ERP first",
                details={"payment_terms": "no customer sales area"},
            )
        response = await self._write("POST", path, json=body)
        if response.status != 201:
            self._fail(response, f"add {target} to business partner {bp}")

    async def _merge(self, uri: str, etag: str | None, fields: dict[str, Any]) -> None:
        """MERGE with If-Match; on 412 read the entity's current ETag and try once more."""
        for attempt in range(2):
            headers = {"X-HTTP-Method": "MERGE", "If-Match": etag or "*"}
            response = await self._write("POST", uri, json=fields, headers=headers)
            if response.status in (200, 204):
                return
            if response.status == 412 and attempt == 0:
                fresh = await self._call("GET", uri)
                entity = self._entity(fresh, uri)
                etag = fresh.headers.get("ETag") or _meta(entity, "etag")
                continue
            self._fail(response, f"MERGE {uri}")

    async def _ensure_sales_order(self, message: EnsureSalesOrder) -> Order:
        if not message.first_delivery:  # SAP has no idempotency key: check before create
            expression = (
                f"PurchaseOrderByCustomer eq {_literal(message.purchase_order)} "
                f"and SoldToParty eq {_literal(message.customer_id)}"
            )
            found, _ = await self._walk(
                f"{SO}/A_SalesOrder",
                [("$filter", expression), ("$expand", "to_Item"), ("$format", "json")],
            )
            if found:
                return self._order(found[0])
        body = {
            "SalesOrderType": "OR",
            "SalesOrganization": SALES_AREA["SalesOrganization"],
            "DistributionChannel": SALES_AREA["DistributionChannel"],
            "OrganizationDivision": SALES_AREA["Division"],
            "SoldToParty": message.customer_id,
            "PurchaseOrderByCustomer": message.purchase_order,
            "TransactionCurrency": message.currency,
            "to_Item": {
                "results": [
                    {
                        "SalesOrderItem": str(10 * n),
                        "Material": material,
                        "RequestedQuantity": str(quantity),
                    }
                    for n, (material, quantity) in enumerate(message.items, 1)
                ]
            },
        }
        response = await self._write("POST", f"{SO}/A_SalesOrder", json=body)
        if response.status != 201:
            self._fail(response, "create sales order")
        return self._order(self._d(response))

    async def _ensure_billing_document(self, message: EnsureBillingDocument) -> Invoice:
        """Post the billing document of a billing invoice unless one exists for it: always
        checked first (one invoice may be reported by several events)."""
        expression = (
            f"PurchaseOrderByCustomer eq {_literal(message.billing_invoice)} "
            f"and SoldToParty eq {_literal(message.customer_id)}"
        )
        found, _ = await self._walk(
            f"{BD}/A_BillingDocument", [("$filter", expression), ("$format", "json")]
        )
        if found:
            return self._invoice(found[0])
        body = {
            "SoldToParty": message.customer_id,
            "PurchaseOrderByCustomer": message.billing_invoice,
            "TotalNetAmount": str(message.net_amount),
            "TaxAmount": str(message.tax_amount),
            "TransactionCurrency": message.currency.upper(),
            "AccountingPostingStatus": "C",
        }
        response = await self._write("POST", f"{BD}/A_BillingDocument", json=body)
        if response.status != 201:
            self._fail(response, "post billing document")
        return self._invoice(self._d(response))

    async def _ensure_credit_memo_request(self, message: EnsureCreditMemoRequest) -> str:
        if not message.first_delivery:  # no idempotency key at SAP: check before create
            expression = (
                f"PurchaseOrderByCustomer eq {_literal(message.purchase_order)} "
                f"and SoldToParty eq {_literal(message.customer_id)}"
            )
            found, _ = await self._walk(
                f"{CMR}/A_CreditMemoRequest",
                [
                    ("$filter", expression),
                    ("$select", "CreditMemoRequest"),
                    ("$format", "json"),
                ],
            )
            if found:
                return _credit_memo_request_id(found[0])
        body: dict[str, Any] = {
            "CreditMemoRequestType": "CR",
            "SalesOrganization": SALES_AREA["SalesOrganization"],
            "DistributionChannel": SALES_AREA["DistributionChannel"],
            "OrganizationDivision": SALES_AREA["Division"],
            "SoldToParty": message.customer_id,
            "PurchaseOrderByCustomer": message.purchase_order,
            "SDDocumentReason": message.reason,
            # Edm.Decimal travels as a string, never as a JSON number
            "TotalNetAmount": str(message.amount),
            "TransactionCurrency": message.currency,
        }
        if message.billing_document:
            body["ReferenceSDDocument"] = message.billing_document
        response = await self._write("POST", f"{CMR}/A_CreditMemoRequest", json=body)
        if response.status != 201:
            self._fail(response, "create credit memo request")
        return _credit_memo_request_id(self._d(response))

    # ------------------------------------------------------------------ HTTP and CSRF

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        json: object = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        hdrs = {"Authorization": self._authorization, "Accept": "application/json"}
        if self._cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self._cookies.items())
        hdrs.update(headers or {})
        response = await self.request(
            method, path, params=params, json=json, data=data, headers=hdrs
        )
        self._keep_cookies(response)
        return response

    def _keep_cookies(self, response: Response) -> None:
        getall = getattr(response.headers, "getall", None)
        values = getall("Set-Cookie", []) if getall else []
        for value in values:
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value)
            except CookieError:
                continue
            for name, morsel in jar.items():
                self._cookies[name] = morsel.value

    async def _fetch_csrf(self, stale: str | None) -> str:
        async with self._csrf_lock:
            # another write may have fetched a fresh token while this one waited
            if self._csrf is not None and self._csrf != stale:
                return self._csrf
            response = await self._call("GET", f"{BP}/", headers={"X-CSRF-Token": "Fetch"})
            token = response.headers.get("x-csrf-token")
            if response.status != 200 or not token or token.lower() == "required":
                if response.status != 200:
                    self._fail(response, "CSRF token fetch")
                raise MalformedResponse(self.system, "CSRF token fetch answered no token")
            self._csrf = token
            return token

    async def _write(
        self,
        method: str,
        path: str,
        *,
        json: object,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """A write with the CSRF token; one new token on 403 ``x-csrf-token: Required``."""
        token = self._csrf or await self._fetch_csrf(None)
        for attempt in range(2):
            hdrs = {"X-CSRF-Token": token, **(headers or {})}
            response = await self._call(method, path, json=json, headers=hdrs)
            required = response.headers.get("x-csrf-token", "").lower() == "required"
            if response.status == 403 and required and attempt == 0:
                token = await self._fetch_csrf(token)
                continue
            return response
        return response

    # ------------------------------------------------------------------ answers

    def _fail(self, response: Response, what: str) -> NoReturn:
        status = response.status
        message, fields = _sap_error(response)
        text = f"{what} answered {status}: {message}"
        if status == 503 and "Retry-After" in response.headers:
            raise Throttled(
                self.system,
                f"{what} was throttled; wait for Retry-After before calling again",
                status=status,
                retry_after=retry_after_seconds(response.headers, self.endpoint.max_retry_after),
            )
        if status >= 500:
            raise SystemUnavailable(self.system, text, status=status)
        if status == 404:
            raise NotFound(self.system, text, status=status)
        if status in (401, 403):
            raise Rejected(
                self.system,
                f"{text}; check the ERP credentials in policies/systems.toml",
                status=status,
            )
        if status in (409, 412):
            raise Conflict(self.system, text, status=status, details=fields)
        if fields:
            text = f"{text}; fields: {', '.join(sorted(fields))}"
        raise Rejected(self.system, text, status=status, details=fields)

    def _d(self, response: Response) -> dict[str, Any]:
        body = self.decode(response)
        d = body.get("d") if isinstance(body, dict) else None
        if not isinstance(d, dict):
            raise MalformedResponse(
                self.system, f"answer has no OData 'd' object: {response.body[:120]!r}"
            )
        return d

    def _entity(self, response: Response, what: str) -> dict[str, Any]:
        if response.status != 200:
            self._fail(response, what)
        return self._d(response)

    def _translate(self, kind: str, row: dict[str, Any], build: Callable[[dict[str, Any]], T]) -> T:
        """``build(row)``; a row missing what the model needs is a MalformedResponse."""
        try:
            return build(row)
        except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as exc:
            raise MalformedResponse(
                self.system, f"{kind} could not be read ({type(exc).__name__}: {exc})"
            ) from exc

    def _customer(self, row: dict[str, Any]) -> Customer:
        return self._translate("business partner", row, _customer)

    def _order(self, row: dict[str, Any]) -> Order:
        return self._translate("sales order", row, _order)

    def _invoice(self, row: dict[str, Any]) -> Invoice:
        return self._translate("billing document", row, _invoice)


# ---------------------------------------------------------------------------- translation


def _meta(entity: Mapping[str, Any] | None, key: str) -> str | None:
    meta = entity.get("__metadata") if entity else None
    value = meta.get(key) if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None


def _results(value: Any) -> list[dict[str, Any]]:
    """An expanded to-many navigation's rows (``{"results": [...]}``); [] when deferred."""
    if isinstance(value, dict) and isinstance(value.get("results"), list):
        return [r for r in value["results"] if isinstance(r, dict)]
    return []


def _single(value: Any) -> dict[str, Any] | None:
    """An expanded to-one navigation (or None when deferred or absent)."""
    if isinstance(value, dict) and "__deferred" not in value:
        return value
    return None


class _Parts:
    """The expanded parts of one business partner."""

    def __init__(self, entity: Mapping[str, Any]) -> None:
        addresses = _results(entity.get("to_BusinessPartnerAddress"))
        taxes = _results(entity.get("to_BusinessPartnerTax"))
        self.address = addresses[0] if addresses else None
        self.tax = taxes[0] if taxes else None
        self.customer = _single(entity.get("to_Customer"))
        areas = _results(self.customer.get("to_CustomerSalesArea")) if self.customer else []
        wanted = [a for a in areas if all(a.get(k) == v for k, v in SALES_AREA.items())]
        chosen = wanted or areas
        self.sales_area: dict[str, Any] | None = chosen[0] if chosen else None
        self.country = (self.address or {}).get("Country") or None


def _millis(value: Any) -> int:
    """An OData ``/Date(ms)/`` as epoch milliseconds (0 when absent or unreadable)."""
    try:
        moment = _date(value)
    except (ValueError, TypeError):
        return 0
    return 0 if moment is None else int(moment.timestamp() * 1000)


def _date(value: Any) -> datetime | None:
    """``/Date(1700000000000)/`` or ``/Date(1700000000000+0000)/`` as an aware UTC datetime."""
    if not value:
        return None
    text = str(value)
    if not (text.startswith("/Date(") and text.endswith(")/")):
        raise ValueError(f"not an OData date: {text!r}")
    inner = text[6:-2]
    for sign in "+-":
        head, sep, _ = inner[1:].partition(sign)
        if sep:
            inner = inner[0] + head
            break
    return datetime.fromtimestamp(int(inner) / 1000, UTC)


def _customer(row: dict[str, Any]) -> Customer:
    parts = _Parts(row)
    bp = row["BusinessPartner"]
    external = row.get("BusinessPartnerIDByExtSystem") or None
    names = [row.get("OrganizationBPName1") or "", row.get("OrganizationBPName2") or ""]
    legal = "".join(names).strip() or None
    customer = parts.customer or {}
    blocked = bool(
        row.get("BusinessPartnerIsBlocked")
        or customer.get("OrderIsBlockedForCustomer")
        or customer.get("PostingIsBlocked")
        or customer.get("BillingIsBlockedForCustomer")
    )
    area = parts.sales_area or {}
    return Customer(
        system=System.ERP,
        id=bp,
        name=row.get("BusinessPartnerFullName") or legal or bp,
        # the demo world onboards from the CRM, so an external id shaped like a Salesforce
        # account id (001...) is the CRM cross-reference
        xref=XRef(erp=bp, crm=external if external and external.startswith("001") else None),
        legal_name=legal,
        tax_id=(parts.tax or {}).get("BPTaxNumber") or None,
        country=parts.country,
        payment_terms=area.get("CustomerPaymentTerms") or None,
        credit_status="blocked" if blocked else "ok",
        currency=area.get("Currency") or None,
        updated_at=_date(row.get("LastChangeDate")),
    )


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal("0")


def _order(row: dict[str, Any]) -> Order:
    items = tuple(
        OrderItem(
            material=item["Material"],
            quantity=_decimal(item.get("RequestedQuantity")),
            net_amount=_decimal(item["NetAmount"]) if item.get("NetAmount") else None,
        )
        for item in _results(row.get("to_Item"))
    )
    return Order(
        system=System.ERP,
        id=row["SalesOrder"],
        customer_id=row["SoldToParty"],
        purchase_order=row.get("PurchaseOrderByCustomer") or None,
        status=row.get("OverallSDProcessStatus") or "A",
        net_amount=_decimal(row.get("TotalNetAmount")),
        currency=row.get("TransactionCurrency") or "",
        items=items,
        created_at=_date(row.get("CreationDate")),
    )


def _invoice(row: dict[str, Any]) -> Invoice:
    posted = row.get("AccountingPostingStatus") == "C"
    if row.get("BillingDocumentIsCancelled"):
        status = "cancelled"
    else:
        status = "posted" if posted else "not_posted"
    return Invoice(
        system=System.ERP,
        id=row["BillingDocument"],
        customer_id=row["SoldToParty"],
        status=status,
        total=_decimal(row.get("TotalGrossAmount")),
        currency=row.get("TransactionCurrency") or "",
        tax=_decimal(row.get("TaxAmount")),
        billing_invoice=row.get("PurchaseOrderByCustomer") or None,
        erp_document=row["BillingDocument"],
        posted=posted,
        created_at=_date(row.get("BillingDocumentDate") or row.get("CreationDate")),
    )


def _sap_error(response: Response) -> tuple[str, dict[str, object]]:
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


def _credit_memo_request_id(entity: Mapping[str, Any]) -> str:
    number = entity.get("CreditMemoRequest")
    if not isinstance(number, str) or not number:
        raise MalformedResponse(System.ERP, "a credit memo request without CreditMemoRequest")
    return number
