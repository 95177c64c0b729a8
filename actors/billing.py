"""The billing connector: Stripe API v1 <-> the canonical model.

Requests are form-encoded with Stripe's bracketed keys (``form_encode``:
``metadata[erp_bp]=...``, ``items[0][price]=...``); every write sends
``Idempotency-Key: <message.idempotency_key>``, so delivering a message twice has one
effect (Stripe replays the first answer).

Reads:
- ``GetCustomers``: Stripe has no batch retrieve and its search has no ``id`` field. Up to
  ``SCAN_ABOVE`` ids are retrieved one by one, concurrently, at most ``FAN_OUT`` at a
  time. For more, the connector first reads the customer list (newest first, 100 a page),
  spending at most one page per ``IDS_PER_PAGE`` ids wanted (and ``MAX_SCAN_PAGES`` in
  all), and picks the wanted ids from it; whatever that did not reach is retrieved one by
  one. A list read to its end proves the rest do not exist. In a small account fifty
  customers cost a page or two; in a large one the scan costs at most a tenth more
  calls than retrieving each. Missing or deleted customers are left out of the answer;
- ``GetSubscriptions`` / ``GetInvoices``: the ``customer=`` list filter per customer,
  concurrently (bounded), following ``starting_after`` while ``has_more``; subscriptions
  are listed with ``status=all`` (Stripe leaves canceled ones out by default);
- ``ListCustomers``: one page, ``starting_after`` = the cursor (the last id seen);
- ``FindCustomers``: search ``name~'<text>'`` (Stripe needs at least 3 characters:
  shorter text is Rejected before any call); ``FindCustomerByXRef``: search
  ``metadata['erp_bp']:'<bp>'`` (the oldest match wins when several carry the key).
  Search values are quoted and escaped (``search_quote``).

Writes:
- ``EnsureCustomer``: search by ``metadata['erp_bp']`` first, else create with the
  Idempotency-Key (metadata ``erp_bp``, ``crm_account_id``, ``crosswalk_id`` = external id);
- ``UpdateCustomer``: ``POST /v1/customers/{id}`` with name, email, country (``address``);
  other canonical fields have no place in Stripe and are Rejected;
- ``CreateSubscription``: ``collection_method=send_invoice`` with ``days_until_due=30``
  (B2B invoices the ERP posts), so the first invoice is finalized (``invoice.finalized``);
- ``RenewSubscription``: ``POST /v1/subscriptions/{id}`` with ``billing_cycle_anchor=now``,
  ``proration_behavior=none`` and ``cancel_at_period_end=false``: Stripe starts a new
  period now and invoices it at once; the merge of ``metadata`` records the renewal;
- ``CreateCreditNote``: ``POST /v1/credit_notes`` with ``amount`` in cents (two-decimal
  currencies) and ``metadata[crosswalk_key]``; a redelivery first lists the invoice's
  credit notes (``invoice=``) and answers the one carrying its key.

Error mapping: 429 -> ``Throttled`` (``retry_after = THROTTLE_PAUSE``: Stripe sends no
hint); 409 (the same Idempotency-Key still in flight) -> ``Throttled`` (retry soon);
``idempotency_error`` -> ``Conflict``; 404 or ``resource_missing`` -> ``NotFound``;
402 ``card_error`` -> ``Rejected``; 401 -> ``SystemUnavailable`` not retryable; other
4xx -> ``Rejected`` with ``param`` in ``details["fields"]``; 5xx -> ``SystemUnavailable``,
except with ``Stripe-Should-Retry: false`` (a failure replayed for the same
Idempotency-Key) -> ``Rejected``; an unreadable body -> ``MalformedResponse``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import anyio

from actors.connector import Endpoint, HttpConnector, Response
from actors.errors import (
    Conflict,
    CrosswalkSystemError,
    MalformedResponse,
    NotFound,
    Rejected,
    SystemUnavailable,
    Throttled,
)
from actors.messages import (
    ChangedRecord,
    ChangePage,
    CreateCreditNote,
    CreateSubscription,
    EnsureCustomer,
    FindCustomerByXRef,
    FindCustomers,
    GetChanges,
    GetCustomers,
    GetInvoices,
    GetSubscriptions,
    ListCustomers,
    Message,
    Page,
    RenewSubscription,
    UpdateCustomer,
)
from canonical import Customer, Invoice, Subscription, SubscriptionItem, System, XRef

__all__ = [
    "FAN_OUT",
    "SCAN_ABOVE",
    "THROTTLE_PAUSE",
    "BillingConnector",
    "form_encode",
    "search_quote",
]

#: concurrent calls one batched read makes (Stripe has no batch retrieve)
FAN_OUT = 8
#: more ids than this are looked for in the customer list before retrieving one by one
SCAN_ABOVE = 8
#: list pages (of 100) the scan may read per this many ids wanted ...
IDS_PER_PAGE = 10
#: ... and in all
MAX_SCAN_PAGES = 5
#: customers per list page the scan reads (Stripe's maximum)
SCAN_PAGE = 100
#: seconds to wait after a 429: Stripe sends no Retry-After
THROTTLE_PAUSE = 1.0
#: seconds to wait when the same Idempotency-Key is still being served (409)
IN_FLIGHT_PAUSE = 0.25
#: days an invoice of a subscription the gateway creates is due after finalizing
DAYS_UNTIL_DUE = 30
#: canonical customer fields that have a place in a Stripe customer
_UPDATABLE = ("name", "email", "country")

T = TypeVar("T")


def form_encode(params: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding: nested dicts as ``a[b]``, lists as ``a[0]``, bools lower-case."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        pairs.extend(_encode_value(name, value))
    return pairs


def _encode_value(name: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, Mapping):
        return form_encode(value, name)
    if isinstance(value, list | tuple):
        out: list[tuple[str, str]] = []
        for n, item in enumerate(value):
            out.extend(_encode_value(f"{name}[{n}]", item))
        return out
    if isinstance(value, bool):
        return [(name, "true" if value else "false")]
    if value is None:
        return [(name, "")]  # Stripe reads an empty value as "unset"
    return [(name, str(value))]


def search_quote(value: str) -> str:
    """A search-language string literal: single quotes, ``\\`` and ``'`` escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _moment(value: object) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int) else None


def _day(value: object) -> date | None:
    moment = _moment(value)
    return moment.date() if moment else None


def _money(value: object) -> Decimal | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return (Decimal(value) / 100).quantize(Decimal("0.01"))


def _currency(value: object) -> str | None:
    return value.upper() if isinstance(value, str) else None


class BillingConnector(HttpConnector):
    """Talks to Stripe (or the billing sandbox) for the billing actor."""

    system = System.BILLING

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint)
        key = endpoint.credentials.get("api_key", "")
        self._auth = {"Authorization": f"Bearer {key}"}
        self.fan_out = FAN_OUT
        self.scan_above = SCAN_ABOVE

    # ------------------------------------------------------------------ dispatch

    async def handle(self, message: Message) -> object:
        match message:
            case GetCustomers(ids=ids):
                return await self._get_customers(ids)
            case ListCustomers(cursor=cursor, limit=limit):
                return await self._list_customers(cursor, limit)
            case FindCustomers(text=text, limit=limit):
                return await self._find_customers(text, limit)
            case FindCustomerByXRef(erp_bp=erp_bp):
                return await self._find_by_xref(erp_bp)
            case GetSubscriptions(customer_ids=ids):
                return await self._per_customer(ids, self._subscriptions_of)
            case GetInvoices(customer_ids=ids):
                return await self._per_customer(ids, self._invoices_of)
            case GetChanges(feed=feed, cursor=cursor, limit=limit):
                return await self._changes(feed, cursor, limit)
            case EnsureCustomer():
                return await self._ensure_customer(message)
            case UpdateCustomer():
                return await self._update_customer(message)
            case CreateSubscription():
                return await self._create_subscription(message)
            case RenewSubscription():
                return await self._renew_subscription(message)
            case CreateCreditNote():
                return await self._create_credit_note(message)
            case _:
                raise TypeError(
                    f"The billing connector cannot handle {type(message).__name__}: it answers "
                    "customer reads and writes, subscriptions and invoices."
                )

    async def _ping(self) -> None:
        await self._call("GET", "/v1/customers", params={"limit": 1})

    # ------------------------------------------------------------------ HTTP

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        headers = dict(self._auth)
        query: list[tuple[str, str]] | None = None
        data: list[tuple[str, str]] | None = None
        encoded = form_encode(params or {})
        if method == "POST":
            data = encoded
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            if idempotency_key is not None:
                headers["Idempotency-Key"] = idempotency_key
        else:
            query = encoded
        response = await self.request(method, path, params=query, data=data, headers=headers)
        if response.status >= 300:
            self._raise_for(response, f"{method} {path}")
        body = self.decode(response)
        if not isinstance(body, dict):
            raise MalformedResponse(self.system, f"{method} {path}: answer is not a JSON object")
        return body

    def _raise_for(self, response: Response, what: str) -> None:
        status = response.status
        retry_header = response.headers.get("Stripe-Should-Retry")
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            if status >= 500:
                raise SystemUnavailable(self.system, f"{what} answered {status}", status=status)
            raise MalformedResponse(
                self.system, f"{what} answered {status} without a Stripe error body", status=status
            )
        kind = str(error.get("type") or "")
        code = error.get("code")
        param = error.get("param")
        message = f"{what}: {error.get('message') or kind}"
        details: dict[str, object] = {
            "type": kind,
            "code": code,
            "fields": [param] if param else [],
        }
        if "decline_code" in error:
            details["decline_code"] = error["decline_code"]
        failure: CrosswalkSystemError
        if status == 429:
            failure = Throttled(self.system, message, status=status, retry_after=THROTTLE_PAUSE)
        elif status == 409:
            failure = Throttled(self.system, message, status=status, retry_after=IN_FLIGHT_PAUSE)
        elif status >= 500 and retry_header == "false":
            # a stored failure replayed for this Idempotency-Key: it will answer the same again
            failure = Rejected(self.system, message, status=status, details=details)
        elif status >= 500:
            failure = SystemUnavailable(self.system, message, status=status, details=details)
        elif status == 401:
            failure = SystemUnavailable(self.system, message, status=status, details=details)
            failure.retryable = False  # the same key will be refused again
        elif kind == "idempotency_error":
            failure = Conflict(self.system, message, status=status, details=details)
        elif status == 404 or code == "resource_missing":
            failure = NotFound(self.system, message, status=status, details=details)
        else:
            failure = Rejected(self.system, message, status=status, details=details)
        raise failure

    async def _fan_out(
        self, keys: Iterable[str], fetch: Callable[[str], Awaitable[T]]
    ) -> dict[str, T]:
        """``fetch`` each key, at most ``fan_out`` at a time; a None answer is left out."""
        results: dict[str, T] = {}
        unique = list(dict.fromkeys(keys))
        if len(unique) == 1:
            # one key (a customer 360): no task group, limiter and task to pay for
            value = await fetch(unique[0])
            if value is not None:
                results[unique[0]] = value
            return results
        limiter = anyio.CapacityLimiter(self.fan_out)

        async def one(key: str) -> None:
            async with limiter:
                value = await fetch(key)
            if value is not None:
                results[key] = value

        try:
            async with anyio.create_task_group() as tg:
                for key in unique:
                    tg.start_soon(one, key)
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
        return results

    async def _walk(self, path: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every object of a list endpoint, page by page with ``starting_after``."""
        items: list[dict[str, Any]] = []
        query = {**params, "limit": 100}
        for _ in range(self.endpoint.max_pages):
            page = await self._call("GET", path, params=query)
            data = _list_data(page, path)
            items.extend(data)
            if not page.get("has_more") or not data:
                return items
            query["starting_after"] = data[-1]["id"]
        raise self.paging_limit(f"GET {path}")

    # ------------------------------------------------------------------ customers

    async def _retrieve_customer(self, customer_id: str) -> Customer | None:
        try:
            doc = await self._call("GET", f"/v1/customers/{customer_id}")
        except NotFound:
            return None
        return None if doc.get("deleted") else self._customer(doc)

    async def _get_customers(self, ids: tuple[str, ...]) -> dict[str, Customer]:
        wanted = list(dict.fromkeys(ids))
        found: dict[str, Customer] = {}
        if len(wanted) > self.scan_above:
            budget = min(MAX_SCAN_PAGES, -(-len(wanted) // IDS_PER_PAGE))
            found, complete = await self._scan_customers(set(wanted), budget)
            if complete:
                return found
        rest = [key for key in wanted if key not in found]
        fetched = await self._fan_out(rest, self._retrieve_customer)
        found.update((key, value) for key, value in fetched.items() if value is not None)
        return found

    async def _scan_customers(
        self, wanted: set[str], pages: int
    ) -> tuple[dict[str, Customer], bool]:
        """The wanted customers among the newest ``pages`` pages; True when none can be left."""
        found: dict[str, Customer] = {}
        query: dict[str, Any] = {"limit": SCAN_PAGE}
        for _ in range(pages):
            page = await self._call("GET", "/v1/customers", params=query)
            data = _list_data(page, "/v1/customers")
            found.update((d["id"], self._customer(d)) for d in data if d["id"] in wanted)
            if len(found) == len(wanted) or not page.get("has_more") or not data:
                return found, True
            query["starting_after"] = data[-1]["id"]
        return found, False

    async def _list_customers(self, cursor: str | None, limit: int) -> Page[Customer]:
        params: dict[str, Any] = {"limit": max(1, min(limit, 100))}
        if cursor:
            params["starting_after"] = cursor
        page = await self._call("GET", "/v1/customers", params=params)
        data = _list_data(page, "/v1/customers")
        items = tuple(self._customer(doc) for doc in data)
        more = bool(page.get("has_more")) and bool(data)
        return Page(items, next_cursor=data[-1]["id"] if more else None)

    async def _search(self, query: str, limit: int) -> list[dict[str, Any]]:
        params = {"query": query, "limit": max(1, min(limit, 100))}
        page = await self._call("GET", "/v1/customers/search", params=params)
        return _list_data(page, "/v1/customers/search")

    async def _find_customers(self, text: str, limit: int) -> tuple[Customer, ...]:
        if len(text.strip()) < 3:
            raise Rejected(
                self.system,
                "Stripe's substring search needs at least 3 characters; pass a longer text.",
                details={"fields": ["text"]},
            )
        docs = await self._search(f"name~{search_quote(text.strip())}", limit)
        return tuple(self._customer(doc) for doc in docs[:limit])

    async def _find_by_xref(self, erp_bp: str) -> Customer | None:
        docs = await self._search(f"metadata['erp_bp']:{search_quote(erp_bp)}", 10)
        if not docs:
            return None
        return self._customer(min(docs, key=lambda d: (int(d.get("created") or 0), d["id"])))

    async def _ensure_customer(self, message: EnsureCustomer) -> Customer:
        wanted = message.customer
        if wanted.xref.erp:
            existing = await self._find_by_xref(wanted.xref.erp)
            if existing is not None:
                return existing
        metadata = {
            "erp_bp": wanted.xref.erp,
            "crm_account_id": wanted.xref.crm,
            "crosswalk_id": message.external_id,
            "written_by": self.endpoint.client_name,
        }
        params: dict[str, Any] = {
            "name": wanted.name,
            "metadata": {k: v for k, v in metadata.items() if v},
        }
        if wanted.email:
            params["email"] = wanted.email
        if wanted.country:
            params["address"] = {"country": wanted.country}
        doc = await self._call(
            "POST", "/v1/customers", params=params, idempotency_key=message.idempotency_key
        )
        return self._customer(doc)

    async def _update_customer(self, message: UpdateCustomer) -> Customer:
        unknown = sorted(set(message.changes) - set(_UPDATABLE))
        if unknown:
            raise Rejected(
                self.system,
                f"billing keeps no {', '.join(unknown)} on a customer; only "
                f"{', '.join(_UPDATABLE)} can be changed there.",
                details={"fields": unknown},
            )
        params: dict[str, Any] = {}
        for name, value in message.changes.items():
            if name == "country":
                params["address"] = {"country": value}
            else:
                params[name] = value
        doc = await self._call(
            "POST",
            f"/v1/customers/{message.id}",
            params=params,
            idempotency_key=message.idempotency_key,
        )
        return self._customer(doc)

    def _customer(self, doc: Mapping[str, Any]) -> Customer:
        try:
            metadata = doc.get("metadata") or {}
            addr = doc.get("address") or {}
            return Customer(
                system=System.BILLING,
                id=str(doc["id"]),
                name=str(doc.get("name") or ""),
                xref=XRef(
                    erp=metadata.get("erp_bp"),
                    billing=str(doc["id"]),
                    crm=metadata.get("crm_account_id"),
                ),
                country=addr.get("country"),
                currency=_currency(doc.get("currency")),
                email=doc.get("email"),
                updated_at=None,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise MalformedResponse(self.system, f"unreadable customer: {exc!r}") from exc

    # ------------------------------------------------------------------ change feeds

    async def _changes(self, feed: str, cursor: str | None, limit: int) -> ChangePage:
        """``events``: ``GET /v1/events?created[gte]=`` since the cursor's time (every
        page, oldest answered last). Events name the records that changed; their objects
        are the state of the event's own second, so the gateway reads the slice back
        rather than trust an object that may be older than what it holds.
        ``customers``, ``invoices``, ``subscriptions``: the initial listing, a page per
        call (``starting_after``), then ``done``."""
        if feed == "events":
            return await self._event_changes(cursor)
        listing = {
            "customers": ("/v1/customers", {}),
            "invoices": ("/v1/invoices", {}),
            "subscriptions": ("/v1/subscriptions", {"status": "all"}),
        }.get(feed)
        if listing is None:
            raise Rejected(self.system, f"billing has no change feed {feed!r}")
        if cursor == "done":
            return ChangePage((), "done", False)
        if cursor is not None and not cursor.startswith("after:"):
            raise Rejected(self.system, f"cursor {cursor!r} was not made by the billing connector")
        path, params = listing
        query: dict[str, Any] = {**params, "limit": max(1, min(limit, 100))}
        if cursor is not None:
            query["starting_after"] = cursor.removeprefix("after:")
        page = await self._call("GET", path, params=query)
        data = _list_data(page, path)
        records: list[ChangedRecord] = []
        for doc in data:
            if feed == "customers":
                if doc.get("deleted"):
                    continue
                value: Any = self._customer(doc)
                records.append(ChangedRecord("customer", value.id, value.id, value))
            elif feed == "invoices":
                value = self._invoice(doc)
                records.append(ChangedRecord("invoice", value.id, value.customer_id, value))
            else:
                value = self._subscription(doc)
                records.append(ChangedRecord("subscription", value.id, value.customer_id, value))
        if page.get("has_more") and data:
            return ChangePage(tuple(records), f"after:{data[-1]['id']}", True)
        return ChangePage(tuple(records), "done", False)

    async def _event_changes(self, cursor: str | None) -> ChangePage:
        if cursor is None:
            # from now on: the listings that follow read what happened before
            return ChangePage((), f"t:{int(time.time())}", False)
        if not cursor.startswith("t:") or not cursor[2:].isdigit():
            raise Rejected(self.system, f"cursor {cursor!r} was not made by the billing connector")
        since = int(cursor[2:])
        # created[gte]: events of the cursor's own second are read again (the read-back
        # is idempotent), so none of that second is missed
        events = await self._walk("/v1/events", {"created[gte]": since})
        newest = since
        records: dict[tuple[str, str], ChangedRecord] = {}
        for event in events:
            created = event.get("created")
            if isinstance(created, int) and not isinstance(created, bool):
                newest = max(newest, created)
            kind = str(event.get("type") or "")
            obj = (event.get("data") or {}).get("object") or {}
            if not isinstance(obj, dict) or "id" not in obj:
                continue
            owner = obj.get("customer")
            owner_id = str(owner["id"] if isinstance(owner, dict) else owner) if owner else None
            if kind.startswith("customer.subscription."):
                change = ChangedRecord("subscription", str(obj["id"]), owner_id)
            elif kind.startswith("invoice."):
                change = ChangedRecord("invoice", str(obj["id"]), owner_id)
            elif kind.startswith("customer."):
                change = ChangedRecord(
                    "customer", str(obj["id"]), str(obj["id"]), deleted=kind == "customer.deleted"
                )
            else:
                continue
            records[(change.kind, change.id)] = change
        return ChangePage(tuple(records.values()), f"t:{newest}", False)

    # ------------------------------------------------------------------ subscriptions, invoices

    async def _per_customer(
        self, ids: tuple[str, ...], fetch: Callable[[str], Awaitable[tuple[T, ...]]]
    ) -> dict[str, tuple[T, ...]]:
        return await self._fan_out(ids, fetch)

    async def _subscriptions_of(self, customer_id: str) -> tuple[Subscription, ...]:
        docs = await self._walk("/v1/subscriptions", {"customer": customer_id, "status": "all"})
        return tuple(self._subscription(doc) for doc in docs)

    async def _invoices_of(self, customer_id: str) -> tuple[Invoice, ...]:
        docs = await self._walk("/v1/invoices", {"customer": customer_id})
        return tuple(self._invoice(doc) for doc in docs)

    async def _create_subscription(self, message: CreateSubscription) -> Subscription:
        if not message.first_delivery:
            # Stripe keeps an Idempotency-Key for 24 hours only: a redelivery after that
            # (a dead letter replayed next week) finds its own subscription by the key
            # it was stamped with, instead of creating a second one
            query = f"metadata['crosswalk_key']:{search_quote(message.idempotency_key)}"
            page = await self._call("GET", "/v1/subscriptions/search", params={"query": query})
            earlier = _list_data(page, "/v1/subscriptions/search")
            if earlier:
                found = self._subscription(min(earlier, key=lambda d: int(d.get("created") or 0)))
                if sorted((i.price, i.quantity) for i in found.items) != sorted(message.items):
                    # what Stripe answers for a key reused with another request
                    raise Conflict(
                        self.system,
                        f"subscription {found.id} was created under idempotency key "
                        f"{message.idempotency_key!r} with other items; use a new key",
                    )
                return found
        params: dict[str, Any] = {
            "customer": message.customer_id,
            "items": [{"price": price, "quantity": qty} for price, qty in message.items],
            "collection_method": "send_invoice",
            "days_until_due": DAYS_UNTIL_DUE,
            "metadata": {**message.metadata, "crosswalk_key": message.idempotency_key},
        }
        doc = await self._call(
            "POST", "/v1/subscriptions", params=params, idempotency_key=message.idempotency_key
        )
        return self._subscription(doc)

    async def _renew_subscription(self, message: RenewSubscription) -> Subscription:
        params: dict[str, Any] = {
            "billing_cycle_anchor": "now",
            "proration_behavior": "none",
            "cancel_at_period_end": False,
        }
        if message.metadata:
            params["metadata"] = dict(message.metadata)
        doc = await self._call(
            "POST",
            f"/v1/subscriptions/{message.subscription_id}",
            params=params,
            idempotency_key=message.idempotency_key,
        )
        return self._subscription(doc)

    async def _create_credit_note(self, message: CreateCreditNote) -> str:
        amount = message.amount * 100
        if amount != amount.to_integral_value() or amount <= 0:
            raise Rejected(
                self.system,
                f"a credit note of {message.amount} is not a positive amount in whole cents",
                details={"fields": ["amount"]},
            )
        if not message.first_delivery:
            # past Stripe's 24-hour key window the Idempotency-Key is forgotten: a
            # redelivery finds its credit note among the invoice's by the key it carries
            notes = await self._walk("/v1/credit_notes", {"invoice": message.invoice_id})
            earlier = [
                n
                for n in notes
                if (n.get("metadata") or {}).get("crosswalk_key") == message.idempotency_key
            ]
            if earlier:
                first = min(earlier, key=lambda n: (int(n.get("created") or 0), n["id"]))
                if first.get("amount") != int(amount):
                    raise Conflict(
                        self.system,
                        f"credit note {first['id']} was created under idempotency key "
                        f"{message.idempotency_key!r} for another amount; use a new key",
                    )
                return str(first["id"])
        params: dict[str, Any] = {
            "invoice": message.invoice_id,
            "amount": int(amount),
            "metadata": {"crosswalk_key": message.idempotency_key},
        }
        if message.reason:
            params["reason"] = message.reason
        if message.memo:
            params["memo"] = message.memo
        doc = await self._call(
            "POST", "/v1/credit_notes", params=params, idempotency_key=message.idempotency_key
        )
        if not isinstance(doc.get("id"), str):
            raise MalformedResponse(self.system, "POST /v1/credit_notes answered no id")
        return str(doc["id"])

    def _subscription(self, doc: Mapping[str, Any]) -> Subscription:
        try:
            items = tuple(
                SubscriptionItem(price=str(item["price"]["id"]), quantity=int(item["quantity"]))
                for item in _list_data(doc["items"], "subscription items")
            )
            customer = doc["customer"]
            return Subscription(
                system=System.BILLING,
                id=str(doc["id"]),
                customer_id=str(customer["id"] if isinstance(customer, dict) else customer),
                status=str(doc["status"]),
                items=items,
                current_period_start=_moment(doc.get("current_period_start")),
                current_period_end=_moment(doc.get("current_period_end")),
                cancel_at_period_end=bool(doc.get("cancel_at_period_end")),
                erp_order=(doc.get("metadata") or {}).get("erp_order"),
                created_at=_moment(doc.get("created")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedResponse(self.system, f"unreadable subscription: {exc!r}") from exc

    def _invoice(self, doc: Mapping[str, Any]) -> Invoice:
        try:
            customer = doc["customer"]
            total = _money(doc["total"])
            if total is None:
                raise ValueError(f"total is {doc['total']!r}, not cents")
            return Invoice(
                system=System.BILLING,
                id=str(doc["id"]),
                customer_id=str(customer["id"] if isinstance(customer, dict) else customer),
                status=str(doc["status"]),
                total=total,
                currency=_currency(doc.get("currency")) or "",
                amount_due=_money(doc.get("amount_remaining")),
                tax=_money(doc.get("tax")),
                billing_invoice=str(doc["id"]),
                erp_document=(doc.get("metadata") or {}).get("erp_billing_document"),
                due_date=_day(doc.get("due_date")),
                created_at=_moment(doc.get("created")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedResponse(self.system, f"unreadable invoice: {exc!r}") from exc


def _list_data(page: Any, what: str) -> list[dict[str, Any]]:
    data = page.get("data") if isinstance(page, dict) else None
    if not isinstance(data, list) or not all(isinstance(d, dict) and "id" in d for d in data):
        raise MalformedResponse(System.BILLING, f"{what}: a list answer without data")
    return data


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The connector's own error out of a task group's failure, else the group itself."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _first_error(error)
        if isinstance(error, CrosswalkSystemError):
            return error
    return group
