"""Billing's calls and paging: one Stripe request, list walks, the scan, the change feeds.

``StripePaging`` is the base of ``BillingConnector``. Every call carries the API key;
POSTs are form-encoded and carry ``Idempotency-Key`` when the message has one. Lists are
walked with ``starting_after`` while ``has_more`` (``_walk``); per-key reads fan out at
most ``fan_out`` at a time (Stripe has no batch retrieve); the customer scan reads the
newest list pages for many wanted ids at once (``_scan_customers``). The change feeds
(``_changes``) are the events since a time, and the initial listings page by page.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from actors._tasks import fan_out
from actors.billing.errors import raise_for
from actors.billing.mapping import (
    form_encode,
    list_data,
    to_customer,
    to_invoice,
    to_subscription,
)
from actors.connector import Endpoint, HttpConnector
from actors.errors import MalformedResponse, Rejected
from actors.messages import ChangedRecord, ChangePage
from canonical import Customer

__all__ = [
    "FAN_OUT",
    "IDS_PER_PAGE",
    "MAX_SCAN_PAGES",
    "SCAN_ABOVE",
    "SCAN_PAGE",
    "StripePaging",
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

T = TypeVar("T")


class StripePaging(HttpConnector):
    """Stripe's calls, list walks and change feeds, under ``BillingConnector``."""

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint)
        key = endpoint.credentials.get("api_key", "")
        self._auth = {"Authorization": f"Bearer {key}"}
        self.fan_out = FAN_OUT
        self.scan_above = SCAN_ABOVE

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
            raise_for(response, f"{method} {path}", max_retry_after=self.endpoint.max_retry_after)
        body = self.decode(response)
        if not isinstance(body, dict):
            raise MalformedResponse(self.system, f"{method} {path}: answer is not a JSON object")
        return body

    async def _fan_out(
        self, keys: Iterable[str], fetch: Callable[[str], Awaitable[T | None]]
    ) -> dict[str, T]:
        """``fetch`` each key, at most ``fan_out`` at a time; a None answer is left out."""
        return await fan_out(keys, fetch, limit=self.fan_out)

    async def _walk(self, path: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every object of a list endpoint, page by page with ``starting_after``."""
        items: list[dict[str, Any]] = []
        query = {**params, "limit": 100}
        for _ in range(self.endpoint.max_pages):
            page = await self._call("GET", path, params=query)
            data = list_data(page, path)
            items.extend(data)
            if not page.get("has_more") or not data:
                return items
            query["starting_after"] = data[-1]["id"]
        raise self.paging_limit(f"GET {path}")

    async def _scan_customers(
        self, wanted: set[str], pages: int
    ) -> tuple[dict[str, Customer], bool]:
        """The wanted customers among the newest ``pages`` pages; True when none can be left."""
        found: dict[str, Customer] = {}
        query: dict[str, Any] = {"limit": SCAN_PAGE}
        for _ in range(pages):
            page = await self._call("GET", "/v1/customers", params=query)
            data = list_data(page, "/v1/customers")
            found.update((d["id"], to_customer(d)) for d in data if d["id"] in wanted)
            if len(found) == len(wanted) or not page.get("has_more") or not data:
                return found, True
            query["starting_after"] = data[-1]["id"]
        return found, False

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
        data = list_data(page, path)
        records: list[ChangedRecord] = []
        for doc in data:
            if feed == "customers":
                if doc.get("deleted"):
                    continue
                value: Any = to_customer(doc)
                records.append(ChangedRecord("customer", value.id, value.id, value))
            elif feed == "invoices":
                value = to_invoice(doc)
                records.append(ChangedRecord("invoice", value.id, value.customer_id, value))
            else:
                value = to_subscription(doc)
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
