"""Subscriptions: create (bills the first period), update, cancel, list.

Billing a period creates an invoice for the subscription's items over that period and
finalizes it at once (``invoice.finalized``): ``send_invoice`` leaves it open until paid,
``charge_automatically`` pays it on the spot (``invoice.paid``) unless the customer's card
is declined (``invoice.payment_failed``; the subscription is then ``incomplete``, or
``past_due`` on a renewal). ``billing_cycle_anchor=now`` on update starts a new period
now and bills it, as Stripe does; the gateway renews subscriptions that way.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from sandbox.billing._customers import (
    LIST,
    SEARCH,
    changed,
    live_customer,
    merge_metadata,
    search_page,
)
from sandbox.billing._errors import StripeError
from sandbox.billing._forms import (
    Check,
    boolean,
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
from sandbox.billing._invoices import finalize, payment_fails
from sandbox.billing._objects import (
    CURRENCIES,
    add_interval,
    clone,
    invoice_doc,
    line_item,
    new_id,
    subscription_doc,
    subscription_item,
)

__all__ = ["subscription_routes"]

STATUSES = (
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
)
_ENDED = ("canceled", "incomplete_expired")


def _subscription(ctx: Ctx) -> dict[str, Any]:
    sub_id = ctx.path("id")
    doc = ctx.state.store.get("subscription", sub_id)
    if doc is None:
        raise StripeError(
            404, f"No such subscription: '{sub_id}'", code="resource_missing", param="id"
        )
    return doc


def _price(ctx: Ctx, price_id: str, param: str) -> dict[str, Any]:
    price = ctx.state.store.get("price", price_id)
    if price is None or not price.get("active", True):
        raise StripeError(400, f"No such price: '{price_id}'", code="resource_missing", param=param)
    return price


def _interval(items: list[dict[str, Any]]) -> str:
    intervals = {item["price"]["recurring"]["interval"] for item in items}
    if len(intervals) > 1:
        raise StripeError(
            400,
            "Currency and interval fields must match across all plans on this subscription. "
            f"Found mismatch in interval field ({', '.join(sorted(intervals))}).",
            param="items",
        )
    return str(intervals.pop())


async def _bill_period(ctx: Ctx, sub: dict[str, Any], reason: str) -> tuple[dict[str, Any], bool]:
    """Invoice ``sub``'s current period, finalize it and collect it: (invoice, declined)."""
    store = ctx.state.store
    customer = store.get("customer", sub["customer"]) or {"id": sub["customer"]}
    invoice_id = new_id("in_")
    period = (int(sub["current_period_start"]), int(sub["current_period_end"]))
    lines = [line_item(invoice_id, item, sub["currency"], period) for item in sub["items"]["data"]]
    draft = invoice_doc(
        invoice_id,
        customer=customer,
        subscription=sub["id"],
        created=ctx.now,
        currency=sub["currency"],
        lines=lines,
        collection_method=sub["collection_method"],
        days_until_due=sub["days_until_due"],
        billing_reason=reason,
        period=period,
        auto_advance=True,
    )
    await store.put("invoice", invoice_id, draft)
    invoice = await finalize(ctx, draft)
    declined = False
    if invoice["status"] == "open" and sub["collection_method"] == "charge_automatically":
        paid = clone(invoice)
        paid["attempted"], paid["attempt_count"] = True, 1
        if payment_fails(customer):
            declined = True
            await store.put("invoice", invoice_id, paid)
            await ctx.emit("invoice.payment_failed", paid)
        else:
            paid.update(status="paid", paid=True, amount_paid=paid["total"], amount_remaining=0)
            paid["status_transitions"]["paid_at"] = ctx.now
            await store.put("invoice", invoice_id, paid)
            await ctx.emit("invoice.paid", paid)
        invoice = paid
    return invoice, declined


async def create_subscription(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    store = ctx.state.store
    customer = live_customer(ctx, p["customer"], param="customer")
    method = p.get("collection_method", "charge_automatically")
    days = p.get("days_until_due")
    if method == "send_invoice" and days is None:
        raise StripeError(
            400,
            "Missing required param: days_until_due (needed when collection_method is "
            "send_invoice).",
            code="parameter_missing",
            param="days_until_due",
        )
    if method == "charge_automatically" and days is not None:
        raise StripeError(
            400,
            "Invalid days_until_due: it can only be set when collection_method is send_invoice.",
            param="days_until_due",
        )
    if not p["items"]:
        raise StripeError(
            400, "Missing required param: items.", code="parameter_missing", param="items"
        )
    currency = p.get("currency") or customer.get("currency") or "eur"
    if currency not in CURRENCIES:
        raise StripeError(400, f"Invalid currency: {currency}", param="currency")
    if customer.get("currency") and currency != customer["currency"]:
        raise StripeError(
            400,
            f"You cannot combine currencies on a single customer. This customer has had a "
            f"subscription or payment in {customer['currency']}, but you are trying to pay "
            f"in {currency}.",
            param="currency",
        )
    declines = method == "charge_automatically" and payment_fails(customer)
    behavior = p.get("payment_behavior", "allow_incomplete")
    if declines and behavior == "error_if_incomplete":
        raise StripeError(
            402,
            "Your card was declined.",
            type="card_error",
            code="card_declined",
            extra={"decline_code": "generic_decline"},
        )
    sub_id = new_id("sub_")
    prices = [_price(ctx, item["price"], f"items[{n}][price]") for n, item in enumerate(p["items"])]
    start = ctx.now
    trial_days = p.get("trial_period_days")
    placeholder = [
        subscription_item(sub_id, price, int(item.get("quantity", 1)), start, start, start)
        for price, item in zip(prices, p["items"], strict=True)
    ]
    interval = _interval(placeholder)
    end = start + trial_days * 86400 if trial_days else add_interval(start, interval)
    for item, given in zip(placeholder, p["items"], strict=True):
        item["current_period_end"] = end
        item["metadata"] = {k: v for k, v in (given.get("metadata") or {}).items() if v}
    status = "trialing" if trial_days else ("incomplete" if declines else "active")
    sub = subscription_doc(
        sub_id,
        customer=customer["id"],
        created=start,
        status=status,
        items=placeholder,
        currency=currency,
        period=(start, end),
        metadata={k: v for k, v in (p.get("metadata") or {}).items() if v},
        collection_method=method,
        days_until_due=days,
        description=p.get("description") or None,
    )
    sub["cancel_at_period_end"] = bool(p.get("cancel_at_period_end", False))
    if trial_days:
        sub["trial_start"], sub["trial_end"] = start, end
    if not customer.get("currency"):
        with_currency = clone(customer)
        with_currency["currency"] = currency
        await store.put("customer", customer["id"], with_currency)
        await ctx.emit("customer.updated", with_currency, {"currency": None})
    await store.put("subscription", sub_id, sub)
    await ctx.emit("customer.subscription.created", sub)
    if trial_days or behavior == "default_incomplete":
        return sub
    invoice, _ = await _bill_period(ctx, sub, "subscription_create")
    billed = clone(sub)
    billed["latest_invoice"] = invoice["id"]
    await store.put("subscription", sub_id, billed)
    return billed


async def search_subscriptions(ctx: Ctx) -> dict[str, Any]:
    return search_page(ctx.state.store.all("subscription"), ctx.params, "subscriptions")


async def retrieve_subscription(ctx: Ctx) -> dict[str, Any]:
    return _subscription(ctx)


async def update_subscription(ctx: Ctx) -> dict[str, Any]:
    old = _subscription(ctx)
    p = ctx.params
    if old["status"] in _ENDED and set(p) - {"metadata", "expand"}:
        raise StripeError(
            400,
            "A canceled subscription can only update its cancellation_details and metadata.",
        )
    new = clone(old)
    new["metadata"] = merge_metadata(old["metadata"], p.get("metadata"))
    for name in ("cancel_at_period_end", "description", "days_until_due", "collection_method"):
        if name in p:
            new[name] = p[name] if p[name] != "" else None
    if new["collection_method"] == "send_invoice" and new["days_until_due"] is None:
        raise StripeError(
            400,
            "Missing required param: days_until_due (needed when collection_method is "
            "send_invoice).",
            code="parameter_missing",
            param="days_until_due",
        )
    if new["collection_method"] == "charge_automatically":
        new["days_until_due"] = None
    if new["cancel_at_period_end"]:
        new["cancel_at"] = new["current_period_end"]
    else:
        new["cancel_at"] = None
    if "items" in p:
        _change_items(ctx, new, p["items"])
    renew = p.get("billing_cycle_anchor") == "now"
    if renew:
        interval = _interval(new["items"]["data"])
        start, end = ctx.now, add_interval(ctx.now, interval)
        new["billing_cycle_anchor"] = start
        new["current_period_start"], new["current_period_end"] = start, end
        for item in new["items"]["data"]:
            item["current_period_start"], item["current_period_end"] = start, end
        if new["status"] == "trialing":
            new["trial_end"] = start
    if renew:
        invoice, declined = await _bill_period(ctx, new, "subscription_update")
        new["latest_invoice"] = invoice["id"]
        if declined:
            new["status"] = "past_due"
        elif invoice["status"] == "paid" or new["status"] in ("trialing", "paused"):
            new["status"] = "active"
    previous = changed(old, new)
    if previous:
        await ctx.state.store.put("subscription", new["id"], new)
        await ctx.emit("customer.subscription.updated", new, previous)
    return new


def _change_items(ctx: Ctx, sub: dict[str, Any], changes: list[dict[str, Any]]) -> None:
    items: list[dict[str, Any]] = sub["items"]["data"]
    for n, change in enumerate(changes):
        if "id" in change:
            current = next((i for i in items if i["id"] == change["id"]), None)
            if current is None:
                raise StripeError(
                    400,
                    f"No such subscription item: '{change['id']}'",
                    code="resource_missing",
                    param=f"items[{n}][id]",
                )
            if change.get("deleted"):
                items.remove(current)
                continue
            if "price" in change:
                current["price"] = _price(ctx, change["price"], f"items[{n}][price]")
            if "quantity" in change:
                current["quantity"] = change["quantity"]
            if "metadata" in change:
                current["metadata"] = merge_metadata(current["metadata"], change["metadata"])
        elif "price" in change:
            price = _price(ctx, change["price"], f"items[{n}][price]")
            item = subscription_item(
                sub["id"],
                price,
                int(change.get("quantity", 1)),
                ctx.now,
                sub["current_period_start"],
                sub["current_period_end"],
            )
            items.append(item)
        else:
            raise StripeError(
                400,
                f"Missing required param: items[{n}][price] or items[{n}][id].",
                code="parameter_missing",
                param=f"items[{n}][price]",
            )
    if not items:
        raise StripeError(400, "A subscription must keep at least one item.", param="items")
    _interval(items)
    sub["items"]["total_count"] = len(items)


async def cancel_subscription(ctx: Ctx) -> dict[str, Any]:
    old = _subscription(ctx)
    if old["status"] in _ENDED:
        raise StripeError(
            400, f"The subscription {old['id']} has already been canceled.", param="id"
        )
    new = clone(old)
    new.update(status="canceled", canceled_at=ctx.now, ended_at=ctx.now, cancel_at_period_end=False)
    await ctx.state.store.put("subscription", new["id"], new)
    await ctx.emit("customer.subscription.deleted", new, changed(old, new))
    return new


async def list_subscriptions(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    everything = ctx.state.store.all("subscription")
    status = p.get("status")
    price = p.get("price")

    def wanted(sub: dict[str, Any]) -> bool:
        if status is None and sub["status"] in _ENDED:
            return False  # by default Stripe lists the subscriptions that have not ended
        if status == "ended" and sub["status"] not in _ENDED:
            return False
        if status not in (None, "all", "ended") and sub["status"] != status:
            return False
        if price and not any(i["price"]["id"] == price for i in sub["items"]["data"]):
            return False
        for name in ("customer", "collection_method"):
            if name in p and sub.get(name) != p[name]:
                return False
        return matches_created(int(sub["created"]), p.get("created"))

    docs = [s for s in everything if wanted(s)]
    return paginate(docs, p, "/v1/subscriptions", everything=everything)


def subscription_routes(api: Api) -> list[Route]:
    common: dict[str, Check] = {
        "metadata": metadata(),
        "description": string(500),
        "cancel_at_period_end": boolean(),
        "collection_method": enum("charge_automatically", "send_invoice"),
        "days_until_due": integer(0, 1095),
        "payment_behavior": enum(
            "allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"
        ),
        "proration_behavior": enum("create_prorations", "none", "always_invoice"),
        "off_session": boolean(),
        "expand": expand_list(),
    }
    new_item = obj(
        {"price": string(200), "quantity": integer(0, 100000), "metadata": metadata()},
        required=("price",),
    )
    changed_item = obj(
        {
            "id": string(200),
            "price": string(200),
            "quantity": integer(0, 100000),
            "metadata": metadata(),
            "deleted": boolean(),
        }
    )
    create = obj(
        {
            **common,
            "customer": string(200),
            "items": list_of(new_item, max_items=20),
            "currency": enum(*CURRENCIES),
            "trial_period_days": integer(1, 730),
        },
        required=("customer", "items"),
    )
    update = obj(
        {
            **common,
            "items": list_of(changed_item, max_items=20),
            "billing_cycle_anchor": enum("now", "unchanged"),
        }
    )
    cancel = obj(
        {
            "invoice_now": boolean(),
            "prorate": boolean(),
            "expand": expand_list(),
            "cancellation_details": obj({"comment": string(5000), "feedback": string(100)}),
        }
    )
    listing = obj(
        {
            **LIST,
            "customer": string(200),
            "price": string(200),
            "status": enum(*STATUSES, "all", "ended"),
            "collection_method": enum("charge_automatically", "send_invoice"),
        }
    )
    return [
        api.route(
            "GET",
            "/v1/subscriptions/search",
            obj(SEARCH, required=("query",)),
            search_subscriptions,
            returns="subscription",
            listing=True,
        ),
        api.route("POST", "/v1/subscriptions", create, create_subscription, returns="subscription"),
        api.route(
            "GET",
            "/v1/subscriptions",
            listing,
            list_subscriptions,
            returns="subscription",
            listing=True,
        ),
        api.route(
            "GET",
            "/v1/subscriptions/{id}",
            obj({"expand": expand_list()}),
            retrieve_subscription,
            returns="subscription",
        ),
        api.route(
            "POST", "/v1/subscriptions/{id}", update, update_subscription, returns="subscription"
        ),
        api.route(
            "DELETE", "/v1/subscriptions/{id}", cancel, cancel_subscription, returns="subscription"
        ),
    ]
