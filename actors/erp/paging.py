"""The ERP's wire session and paging: how calls reach SAP and collections are read whole.

``ODataPaging`` is the base of ``ErpConnector``. Every call carries Basic auth and the
session cookie SAP binds its CSRF token to; writes carry the token fetched with
``X-CSRF-Token: Fetch``, and a 403 with ``x-csrf-token: Required`` fetches a new one once.

Batched reads put many keys in one ``$filter`` as an ``or`` chain (``SoldToParty eq 'a' or
SoldToParty eq 'b'``), chunked so each URL stays under ~6 KB (``or_chunks``), and follow
the server's ``__next`` links to the end. When the keys need several chunks, the chunks'
first pages go out as one OData ``$batch`` request to the service (``actors.erp.batch``);
each part's answer is read as its single GET would be. The change feeds (``_changes``)
filter on the change time.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from http.cookies import CookieError, SimpleCookie
from typing import Any, NoReturn
from urllib.parse import quote, urlencode, urljoin

import anyio

from actors.connector import Endpoint, HttpConnector, Response
from actors.erp.batch import BatchFormatError, build_get_batch, parse_batch_answer
from actors.erp.errors import raise_for
from actors.erp.mapping import millis, to_customer, to_invoice, to_order
from actors.errors import LimitExceeded, MalformedResponse, Rejected
from actors.messages import ChangedRecord, ChangePage

__all__ = [
    "BD",
    "BP",
    "CMR",
    "CUSTOMER_EXPAND",
    "SO",
    "ODataPaging",
    "key_path",
    "literal",
    "or_chunks",
]

ROOT = "/sap/opu/odata/sap"
BP = f"{ROOT}/API_BUSINESS_PARTNER"
SO = f"{ROOT}/API_SALES_ORDER_SRV"
BD = f"{ROOT}/API_BILLING_DOCUMENT_SRV"
CMR = f"{ROOT}/API_CREDIT_MEMO_REQUEST_SRV"
#: what a customer read expands: address (country), tax number, sales area (terms, currency)
CUSTOMER_EXPAND = "to_BusinessPartnerAddress,to_BusinessPartnerTax,to_Customer/to_CustomerSalesArea"
#: encoded $filter budget per request: SAP Gateway and proxies refuse URLs past ~8 KB
FILTER_BUDGET = 6000
#: chunks whose first pages go out in one $batch; SAP Gateway, like the sandbox, caps the
#: parts of a batch
BATCH_PARTS = 100
#: what stays unencoded in a batch part's query, as in a single GET's: OData's own syntax
_QUERY_SAFE = "$'(),/"


def literal(value: str) -> str:
    """An OData string literal: quotes doubled, so a value can never end the literal."""
    return "'" + value.replace("'", "''") + "'"


def key_path(entity_set: str, key: str) -> str:
    return f"{entity_set}({quote(literal(key), safe=chr(39))})"


def or_chunks(field: str, values: Iterable[str], budget: int = FILTER_BUDGET) -> list[str]:
    """``field eq 'a' or field eq 'b' ...`` filters, each under ``budget`` encoded bytes."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    joiner = len(quote(" or "))
    for value in dict.fromkeys(values):
        clause = f"{field} eq {literal(value)}"
        cost = len(quote(clause, safe="")) + joiner
        if current and size + cost > budget:
            chunks.append(" or ".join(current))
            current, size = [], 0
        current.append(clause)
        size += cost
    if current:
        chunks.append(" or ".join(current))
    return chunks


class ODataPaging(HttpConnector):
    """SAP's session rules and OData paging, under ``ErpConnector`` (see the module)."""

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

    def _fail(self, response: Response, what: str) -> NoReturn:
        raise_for(response, what, max_retry_after=self.endpoint.max_retry_after)

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

    # ------------------------------------------------------------------ paging

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
            customers = tuple(to_customer(row) for row in rows)
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
            newest = max(newest, millis(row.get("LastChangeDateTime")))
            if feed == "orders":
                order = to_order(row)
                records.append(ChangedRecord("order", order.id, order.customer_id, order))
            else:
                doc = to_invoice(row)
                records.append(ChangedRecord("billing_document", doc.id, doc.customer_id, doc))
        if not rows and cursor is None:
            newest = started
        return ChangePage(tuple(records), f"ms:{newest}", False)
