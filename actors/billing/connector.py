"""The billing connector: Stripe API v1 <-> the canonical model, message by message.

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

The rest of the billing package: ``mapping`` (Stripe objects <-> canonical records, the
form encoding, search quoting), ``paging`` (calls, list walks, the fan-out and the scan,
change feeds) and ``errors`` (Stripe's error table: 429 and a 409 in flight are
``Throttled``, ``idempotency_error`` a ``Conflict`` ...).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from actors.billing.mapping import (
    list_data,
    search_quote,
    to_customer,
    to_invoice,
    to_subscription,
)
from actors.billing.paging import IDS_PER_PAGE, MAX_SCAN_PAGES, StripePaging
from actors.errors import Conflict, MalformedResponse, NotFound, Rejected
from actors.messages import (
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
from canonical import Customer, Invoice, Subscription, System

__all__ = ["BillingConnector"]

#: days an invoice of a subscription the gateway creates is due after finalizing
DAYS_UNTIL_DUE = 30
#: canonical customer fields that have a place in a Stripe customer
_UPDATABLE = ("name", "email", "country")

T = TypeVar("T")


class BillingConnector(StripePaging):
    """Talks to Stripe (or the billing sandbox) for the billing actor."""

    system = System.BILLING

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

    # ------------------------------------------------------------------ customers

    async def _retrieve_customer(self, customer_id: str) -> Customer | None:
        try:
            doc = await self._call("GET", f"/v1/customers/{customer_id}")
        except NotFound:
            return None
        return None if doc.get("deleted") else to_customer(doc)

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

    async def _list_customers(self, cursor: str | None, limit: int) -> Page[Customer]:
        params: dict[str, Any] = {"limit": max(1, min(limit, 100))}
        if cursor:
            params["starting_after"] = cursor
        page = await self._call("GET", "/v1/customers", params=params)
        data = list_data(page, "/v1/customers")
        items = tuple(to_customer(doc) for doc in data)
        more = bool(page.get("has_more")) and bool(data)
        return Page(items, next_cursor=data[-1]["id"] if more else None)

    async def _search(self, query: str, limit: int) -> list[dict[str, Any]]:
        params = {"query": query, "limit": max(1, min(limit, 100))}
        page = await self._call("GET", "/v1/customers/search", params=params)
        return list_data(page, "/v1/customers/search")

    async def _find_customers(self, text: str, limit: int) -> tuple[Customer, ...]:
        if len(text.strip()) < 3:
            raise Rejected(
                self.system,
                "Stripe's substring search needs at least 3 characters; pass a longer text.",
                details={"fields": ["text"]},
            )
        docs = await self._search(f"name~{search_quote(text.strip())}", limit)
        return tuple(to_customer(doc) for doc in docs[:limit])

    async def _find_by_xref(self, erp_bp: str) -> Customer | None:
        docs = await self._search(f"metadata['erp_bp']:{search_quote(erp_bp)}", 10)
        if not docs:
            return None
        return to_customer(min(docs, key=lambda d: (int(d.get("created") or 0), d["id"])))

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
        return to_customer(doc)

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
        return to_customer(doc)

    # ------------------------------------------------------------------ subscriptions, invoices

    async def _per_customer(
        self, ids: tuple[str, ...], fetch: Callable[[str], Awaitable[tuple[T, ...]]]
    ) -> dict[str, tuple[T, ...]]:
        return await self._fan_out(ids, fetch)

    async def _subscriptions_of(self, customer_id: str) -> tuple[Subscription, ...]:
        docs = await self._walk("/v1/subscriptions", {"customer": customer_id, "status": "all"})
        return tuple(to_subscription(doc) for doc in docs)

    async def _invoices_of(self, customer_id: str) -> tuple[Invoice, ...]:
        docs = await self._walk("/v1/invoices", {"customer": customer_id})
        return tuple(to_invoice(doc) for doc in docs)

    async def _create_subscription(self, message: CreateSubscription) -> Subscription:
        if not message.first_delivery:
            # Stripe keeps an Idempotency-Key for 24 hours only: a redelivery after that
            # (a dead letter replayed next week) finds its own subscription by the key
            # it was stamped with, instead of creating a second one
            query = f"metadata['crosswalk_key']:{search_quote(message.idempotency_key)}"
            page = await self._call("GET", "/v1/subscriptions/search", params={"query": query})
            earlier = list_data(page, "/v1/subscriptions/search")
            if earlier:
                found = to_subscription(min(earlier, key=lambda d: int(d.get("created") or 0)))
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
        return to_subscription(doc)

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
        return to_subscription(doc)

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
