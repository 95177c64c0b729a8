"""Customers (with search), prices, products and events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.routing import Route

from sandbox.billing._errors import StripeError
from sandbox.billing._forms import (
    Check,
    boolean,
    created_filter,
    enum,
    expand_list,
    integer,
    list_of,
    matches_created,
    metadata,
    obj,
    string,
)
from sandbox.billing._http import Api, Ctx, paginate
from sandbox.billing._objects import address, clone, customer_doc, new_id
from sandbox.billing._search import Query, parse_query

__all__ = [
    "LIST",
    "SEARCH",
    "changed",
    "customer_routes",
    "live_customer",
    "merge_metadata",
    "search_page",
]

LIST: dict[str, Check] = {
    "limit": integer(1, 100),
    "starting_after": string(200),
    "ending_before": string(200),
    "expand": expand_list(),
    "created": created_filter(),
}
_ADDRESS = obj(
    {k: string(200) for k in ("city", "country", "line1", "line2", "postal_code", "state")}
)


def _email() -> Check:
    plain = string(512)

    def check(value: Any, param: str) -> Any:
        text = plain(value, param)
        if text and ("@" not in text or any(c.isspace() for c in text)):
            raise StripeError(400, f"Invalid email address: {text[:100]}", param=param)
        return text

    return check


_CUSTOMER_FIELDS: dict[str, Check] = {
    "name": string(256),
    "email": _email(),
    "description": string(350),
    "phone": string(20),
    "metadata": metadata(),
    "address": _ADDRESS,
    "preferred_locales": list_of(string(20), max_items=10),
    "tax_exempt": enum("none", "exempt", "reverse"),
    "expand": expand_list(),
}


def live_customer(ctx: Ctx, customer_id: str, *, param: str | None = None) -> dict[str, Any]:
    """The customer, or Stripe's "No such customer" (404 on the URL, 400 as a parameter)."""
    doc = ctx.state.store.get("customer", customer_id)
    if doc is None or doc.get("deleted"):
        raise StripeError(
            400 if param else 404,
            f"No such customer: '{customer_id}'",
            code="resource_missing",
            param=param or "id",
        )
    return doc


def changed(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Stripe's ``previous_attributes``: the old value of each top-level field that changed."""
    return {k: old.get(k) for k in new if old.get(k) != new.get(k)}


def merge_metadata(current: dict[str, str], patch: dict[str, str] | None) -> dict[str, str]:
    if patch is None:
        return current
    if not patch:
        return {}  # metadata="" unsets every key
    merged = dict(current)
    for key, value in patch.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


async def create_customer(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    addr = None
    if p.get("address"):
        addr = address()
        addr.update({k: v or None for k, v in p["address"].items()})
    doc = customer_doc(
        new_id("cus_"),
        created=ctx.now,
        name=p.get("name") or None,
        email=p.get("email") or None,
        metadata={k: v for k, v in (p.get("metadata") or {}).items() if v != ""},
        addr=addr,
        preferred_locales=p.get("preferred_locales"),
        description=p.get("description") or None,
        phone=p.get("phone") or None,
    )
    doc["tax_exempt"] = p.get("tax_exempt", "none")
    await ctx.state.store.put("customer", doc["id"], doc)
    await ctx.emit("customer.created", doc)
    return doc


async def retrieve_customer(ctx: Ctx) -> dict[str, Any]:
    customer_id = ctx.path("id")
    doc = ctx.state.store.get("customer", customer_id)
    if doc is None:
        raise StripeError(
            404, f"No such customer: '{customer_id}'", code="resource_missing", param="id"
        )
    return doc


async def update_customer(ctx: Ctx) -> dict[str, Any]:
    old = live_customer(ctx, ctx.path("id"))
    new = clone(old)
    p = ctx.params
    for name in ("name", "email", "description", "phone"):
        if name in p:
            new[name] = p[name] or None
    if "tax_exempt" in p:
        new["tax_exempt"] = p["tax_exempt"]
    if "preferred_locales" in p:
        new["preferred_locales"] = p["preferred_locales"]
    if "address" in p:
        addr = new["address"] or address()
        addr.update({k: v or None for k, v in p["address"].items()})
        new["address"] = addr if any(addr.values()) else None
    new["metadata"] = merge_metadata(old["metadata"], p.get("metadata"))
    previous = changed(old, new)
    if previous:
        await ctx.state.store.put("customer", new["id"], new)
        await ctx.emit("customer.updated", new, previous)
    return new


async def delete_customer(ctx: Ctx) -> dict[str, Any]:
    old = live_customer(ctx, ctx.path("id"))
    store = ctx.state.store
    for sub in store.all("subscription"):
        if sub["customer"] == old["id"] and sub["status"] not in ("canceled", "incomplete_expired"):
            ended = clone(sub)
            ended.update(status="canceled", canceled_at=ctx.now, ended_at=ctx.now)
            await store.put("subscription", ended["id"], ended)
            await ctx.emit("customer.subscription.deleted", ended)
    tombstone = {"id": old["id"], "object": "customer", "deleted": True, "created": old["created"]}
    await store.put("customer", old["id"], tombstone)
    await ctx.emit("customer.deleted", old)
    return {"id": old["id"], "object": "customer", "deleted": True}


async def list_customers(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    everything = ctx.state.store.all("customer")
    email = p.get("email")
    docs = [
        d
        for d in everything
        if not d.get("deleted")
        and (email is None or d.get("email") == email)
        and _created_ok(d, p.get("created"))
    ]
    return paginate(docs, p, "/v1/customers", everything=everything)


def _created_ok(doc: dict[str, Any], spec: dict[str, int] | None) -> bool:
    return matches_created(int(doc["created"]), spec)


def search_page(
    docs: list[dict[str, Any]] | Callable[[Query], list[dict[str, Any]]],
    params: dict[str, Any],
    resource: str,
) -> dict[str, Any]:
    """One page of a search answer; ``page`` is the opaque token of a previous next_page.
    ``docs``: the records searched, oldest first, or what gives them for the query."""
    query = parse_query(params["query"], resource)
    if callable(docs):
        docs = docs(query)
    hits = sorted(
        (d for d in docs if not d.get("deleted") and query.matches(d)),
        key=lambda d: -int(d["created"]),
    )
    offset = 0
    token = params.get("page")
    if token:
        if not token.startswith("page_") or not token[5:].isdigit():
            raise StripeError(400, f"Invalid page: {token[:60]}", param="page")
        offset = int(token[5:])
    limit = int(params.get("limit", 10))
    page = hits[offset : offset + limit]
    more = offset + limit < len(hits)
    return {
        "object": "search_result",
        "data": page,
        "has_more": more,
        "next_page": f"page_{offset + limit}" if more else None,
        "url": f"/v1/{resource}/search",
    }


SEARCH: dict[str, Check] = {
    "query": string(2000),
    "limit": integer(1, 100),
    "page": string(200),
    "expand": expand_list(),
}


async def search_customers(ctx: Ctx) -> dict[str, Any]:
    store = ctx.state.store

    def searched(query: Query) -> list[dict[str, Any]]:
        pinned = query.pinned_metadata()
        if pinned is None:
            return store.all("customer")
        key, value = pinned
        return store.find("customer", ("metadata", key), _metadata_value(key), value)

    return search_page(searched, ctx.params, "customers")


def _metadata_value(key: str) -> Callable[[dict[str, Any]], str | None]:
    """The index key of a customer: its ``metadata[key]``, casefolded as search compares."""

    def value(doc: dict[str, Any]) -> str | None:
        found = (doc.get("metadata") or {}).get(key)
        return found.casefold() if isinstance(found, str) else None

    return value


# ---------------------------------------------------------------- prices, products, events


def _retriever(kind: str, noun: str) -> Any:
    async def retrieve(ctx: Ctx) -> dict[str, Any]:
        doc_id = ctx.path("id")
        doc = ctx.state.store.get(kind, doc_id)
        if doc is None:
            raise StripeError(
                404, f"No such {noun}: '{doc_id}'", code="resource_missing", param="id"
            )
        return doc

    return retrieve


async def list_prices(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    everything = ctx.state.store.all("price")
    filters = {k: p[k] for k in ("active", "currency", "product", "type") if k in p}
    docs = [
        d
        for d in everything
        if all(d.get(k) == v for k, v in filters.items()) and _created_ok(d, p.get("created"))
    ]
    if p.get("lookup_keys"):
        docs = [d for d in docs if d.get("lookup_key") in p["lookup_keys"]]
    return paginate(docs, p, "/v1/prices", everything=everything)


async def list_products(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    everything = ctx.state.store.all("product")
    docs = [d for d in everything if "active" not in p or d.get("active") == p["active"]]
    return paginate(docs, p, "/v1/products", everything=everything)


async def list_events(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    everything = ctx.state.store.all("event")
    if "type" in p and "types" in p:
        raise StripeError(400, "You may only specify one of these parameters: type, types.")
    types = p.get("types") or ([p["type"]] if "type" in p else None)

    def wanted(event: dict[str, Any]) -> bool:
        if types is None:
            return True
        return any(
            event["type"] == t or (t.endswith("*") and event["type"].startswith(t[:-1]))
            for t in types
        )

    docs = [d for d in everything if wanted(d) and _created_ok(d, p.get("created"))]
    return paginate(docs, p, "/v1/events", everything=everything)


def customer_routes(api: Api) -> list[Route]:
    plain = obj({"expand": expand_list()})
    return [
        api.route(
            "GET",
            "/v1/customers/search",
            obj(SEARCH, required=("query",)),
            search_customers,
            returns="customer",
            listing=True,
        ),
        api.route(
            "POST", "/v1/customers", obj(_CUSTOMER_FIELDS), create_customer, returns="customer"
        ),
        api.route(
            "GET",
            "/v1/customers",
            obj({**LIST, "email": string(512)}),
            list_customers,
            returns="customer",
            listing=True,
        ),
        api.route("GET", "/v1/customers/{id}", plain, retrieve_customer, returns="customer"),
        api.route(
            "POST", "/v1/customers/{id}", obj(_CUSTOMER_FIELDS), update_customer, returns="customer"
        ),
        api.route("DELETE", "/v1/customers/{id}", obj({}), delete_customer, returns="customer"),
        api.route(
            "GET",
            "/v1/prices",
            obj(
                {
                    **LIST,
                    "active": boolean(),
                    "currency": string(3),
                    "product": string(200),
                    "type": enum("one_time", "recurring"),
                    "lookup_keys": list_of(string(200), max_items=10),
                }
            ),
            list_prices,
            returns="price",
            listing=True,
        ),
        api.route("GET", "/v1/prices/{id}", plain, _retriever("price", "price"), returns="price"),
        api.route(
            "GET",
            "/v1/products",
            obj({**LIST, "active": boolean()}),
            list_products,
            returns="product",
            listing=True,
        ),
        api.route(
            "GET", "/v1/products/{id}", plain, _retriever("product", "product"), returns="product"
        ),
        api.route(
            "GET",
            "/v1/events",
            obj({**LIST, "type": string(100), "types": list_of(string(100), max_items=20)}),
            list_events,
            returns="event",
            listing=True,
        ),
        api.route("GET", "/v1/events/{id}", plain, _retriever("event", "event"), returns="event"),
    ]
