"""Invoices and invoice items: draft -> open (finalize) -> paid (pay), void, uncollectible.

Sandbox extension for failed payments: a customer whose ``metadata[sandbox_fail_payments]``
is ``"true"`` has a card that is always declined. Paying such an invoice (without
``paid_out_of_band=true``) counts the attempt, emits ``invoice.payment_failed`` and
answers 402 ``card_error`` / ``card_declined``, as Stripe does for a declined card.
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
    matches_created,
    metadata,
    obj,
    string,
)
from sandbox.billing._http import Api, Ctx, paginate
from sandbox.billing._objects import CURRENCIES, clone, invoice_doc, new_id, recompute_invoice

__all__ = ["finalize", "invoice_routes", "pay", "payment_fails"]

INVOICE_STATUSES = ("draft", "open", "paid", "uncollectible", "void")


def payment_fails(customer: dict[str, Any]) -> bool:
    return (customer.get("metadata") or {}).get("sandbox_fail_payments") == "true"


def _invoice(ctx: Ctx) -> dict[str, Any]:
    invoice_id = ctx.path("id")
    doc = ctx.state.store.get("invoice", invoice_id)
    if doc is None:
        raise StripeError(
            404, f"No such invoice: '{invoice_id}'", code="resource_missing", param="id"
        )
    return doc


async def finalize(ctx: Ctx, invoice: dict[str, Any]) -> dict[str, Any]:
    """A finalized copy of the draft ``invoice``, stored, with its events emitted."""
    store = ctx.state.store
    inv = clone(invoice)
    customer = store.get("customer", inv["customer"])
    if customer is not None and not customer.get("deleted"):
        numbered = clone(customer)
        inv["number"] = f"{numbered['invoice_prefix']}-{numbered['next_invoice_sequence']:04d}"
        numbered["next_invoice_sequence"] += 1
        await store.put("customer", numbered["id"], numbered)
    inv["status"] = "open"
    inv["status_transitions"]["finalized_at"] = ctx.now
    if inv["collection_method"] == "send_invoice" and inv.get("days_until_due") is not None:
        inv["due_date"] = ctx.now + int(inv["days_until_due"]) * 86400
    recompute_invoice(inv)
    if inv["total"] == 0:
        # Stripe marks an invoice with nothing to collect paid as it finalizes it
        _mark_paid(ctx, inv)
    await store.put("invoice", inv["id"], inv)
    await ctx.emit("invoice.finalized", inv)
    if inv["status"] == "paid":
        await ctx.emit("invoice.paid", inv)
    return inv


def _mark_paid(ctx: Ctx, inv: dict[str, Any]) -> None:
    inv["status"] = "paid"
    inv["paid"] = True
    inv["status_transitions"]["paid_at"] = ctx.now
    recompute_invoice(inv)


async def pay(ctx: Ctx, invoice: dict[str, Any], *, out_of_band: bool = False) -> dict[str, Any]:
    """Pay an open invoice; a declined card raises 402 after recording the attempt."""
    store = ctx.state.store
    inv = clone(invoice)
    customer = store.get("customer", inv["customer"]) or {}
    if not out_of_band:
        inv["attempted"] = True
        inv["attempt_count"] = int(inv["attempt_count"]) + 1
    if not out_of_band and payment_fails(customer):
        await store.put("invoice", inv["id"], inv)
        await ctx.emit("invoice.payment_failed", inv)
        raise StripeError(
            402,
            "Your card was declined.",
            type="card_error",
            code="card_declined",
            extra={"decline_code": "generic_decline"},
        )
    _mark_paid(ctx, inv)
    await store.put("invoice", inv["id"], inv)
    await ctx.emit("invoice.paid", inv)
    await _settle_subscription(ctx, inv)
    return inv


async def _settle_subscription(ctx: Ctx, inv: dict[str, Any]) -> None:
    """A subscription waiting on its payment becomes active once nothing is left open."""
    sub = ctx.state.store.get("subscription", inv.get("subscription") or "")
    if sub is None or sub["status"] not in ("past_due", "unpaid", "incomplete"):
        return
    still_open = any(
        d["subscription"] == sub["id"] and d["status"] == "open"
        for d in ctx.state.store.iter("invoice")
    )
    if still_open:
        return
    new = clone(sub)
    new["status"] = "active"
    await ctx.state.store.put("subscription", new["id"], new)
    await ctx.emit("customer.subscription.updated", new, changed(sub, new))


# ---------------------------------------------------------------- endpoints


async def list_invoices(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    everything = ctx.state.store.all("invoice")
    filters = {
        k: p[k] for k in ("customer", "status", "subscription", "collection_method") if k in p
    }
    docs = [
        d
        for d in everything
        if all(d.get(k) == v for k, v in filters.items())
        and matches_created(int(d["created"]), p.get("created"))
    ]
    return paginate(docs, p, "/v1/invoices", everything=everything)


async def search_invoices(ctx: Ctx) -> dict[str, Any]:
    return search_page(ctx.state.store.all("invoice"), ctx.params, "invoices")


async def retrieve_invoice(ctx: Ctx) -> dict[str, Any]:
    return _invoice(ctx)


def _collection(p: dict[str, Any], default_days: int | None = None) -> tuple[str, int | None]:
    method = p.get("collection_method", "charge_automatically")
    days = p.get("days_until_due", default_days)
    if method == "charge_automatically" and "days_until_due" in p:
        raise StripeError(
            400,
            "Invalid days_until_due: it can only be set when collection_method is send_invoice.",
            param="days_until_due",
        )
    if method == "send_invoice" and days is None:
        raise StripeError(
            400,
            "Missing required param: days_until_due (needed when collection_method is "
            "send_invoice).",
            code="parameter_missing",
            param="days_until_due",
        )
    return method, days


async def create_invoice(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    store = ctx.state.store
    customer = live_customer(ctx, p["customer"], param="customer")
    sub_id = p.get("subscription")
    if sub_id is not None:
        sub = store.get("subscription", sub_id)
        if sub is None or sub["customer"] != customer["id"]:
            raise StripeError(
                400,
                f"No such subscription: '{sub_id}' for customer '{customer['id']}'",
                code="resource_missing",
                param="subscription",
            )
    method, days = _collection(p)
    currency = p.get("currency") or customer.get("currency") or "eur"
    invoice_id = new_id("in_")
    lines: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    if p.get("pending_invoice_items_behavior") == "include":
        pending = [
            i
            for i in store.iter("invoiceitem")
            if i["customer"] == customer["id"] and i["invoice"] is None
        ]
        lines = [_item_line(invoice_id, i) for i in pending]
    doc = invoice_doc(
        invoice_id,
        customer=customer,
        subscription=sub_id,
        created=ctx.now,
        currency=currency,
        lines=lines,
        collection_method=method,
        days_until_due=days,
        billing_reason="manual",
        metadata={k: v for k, v in (p.get("metadata") or {}).items() if v},
        description=p.get("description") or None,
        auto_advance=bool(p.get("auto_advance", False)),
    )
    for item in pending:
        attached = clone(item)
        attached["invoice"] = invoice_id
        await store.put("invoiceitem", attached["id"], attached)
    await store.put("invoice", doc["id"], doc)
    await ctx.emit("invoice.created", doc)
    return doc


async def update_invoice(ctx: Ctx) -> dict[str, Any]:
    old = _invoice(ctx)
    p = ctx.params
    new = clone(old)
    if old["status"] != "draft" and set(p) - {"metadata", "description", "expand"}:
        raise StripeError(
            400,
            f"You can only modify metadata and description of a {old['status']} invoice.",
            code="invoice_not_editable",
        )
    new["metadata"] = merge_metadata(old["metadata"], p.get("metadata"))
    if "description" in p:
        new["description"] = p["description"] or None
    if "auto_advance" in p:
        new["auto_advance"] = p["auto_advance"]
    if "days_until_due" in p:
        new["days_until_due"] = p["days_until_due"]
    previous = changed(old, new)
    if previous:
        await ctx.state.store.put("invoice", new["id"], new)
        await ctx.emit("invoice.updated", new, previous)
    return new


async def finalize_invoice(ctx: Ctx) -> dict[str, Any]:
    inv = _invoice(ctx)
    if inv["status"] != "draft":
        raise StripeError(
            400,
            "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
            code="invoice_not_editable",
        )
    return await finalize(ctx, inv)


async def pay_invoice(ctx: Ctx) -> dict[str, Any]:
    inv = _invoice(ctx)
    if inv["status"] == "draft":
        inv = await finalize(ctx, inv)
        if inv["status"] == "paid":
            return inv
    if inv["status"] == "paid":
        raise StripeError(400, "Invoice is already paid", code="invoice_not_editable")
    if inv["status"] not in ("open", "uncollectible"):
        raise StripeError(
            400,
            f"You can only pay an open or uncollectible invoice; this invoice is {inv['status']}.",
            code="invoice_not_editable",
        )
    return await pay(ctx, inv, out_of_band=bool(ctx.params.get("paid_out_of_band", False)))


async def void_invoice(ctx: Ctx) -> dict[str, Any]:
    return await _close(ctx, "void", "voided_at", "invoice.voided")


async def mark_uncollectible(ctx: Ctx) -> dict[str, Any]:
    return await _close(
        ctx, "uncollectible", "marked_uncollectible_at", "invoice.marked_uncollectible"
    )


async def _close(ctx: Ctx, status: str, stamp: str, event: str) -> dict[str, Any]:
    old = _invoice(ctx)
    allowed = ("open", "uncollectible") if status == "void" else ("open",)
    if old["status"] not in allowed:
        raise StripeError(
            400,
            f"You can only mark an open invoice {status}; this invoice is {old['status']}.",
            code="invoice_not_editable",
        )
    new = clone(old)
    new["status"] = status
    new["status_transitions"][stamp] = ctx.now
    recompute_invoice(new)
    await ctx.state.store.put("invoice", new["id"], new)
    await ctx.emit(event, new)
    return new


async def list_lines(ctx: Ctx) -> dict[str, Any]:
    inv = _invoice(ctx)
    lines = [dict(line, created=0) for line in inv["lines"]["data"]]
    page = paginate(lines, ctx.params, f"/v1/invoices/{inv['id']}/lines", everything=lines)
    for line in page["data"]:
        line.pop("created", None)
    return page


# ---------------------------------------------------------------- invoice items


def _item_line(invoice_id: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": new_id("il_"),
        "object": "line_item",
        "amount": item["amount"],
        "currency": item["currency"],
        "description": item["description"],
        "discountable": True,
        "invoice": invoice_id,
        "invoice_item": item["id"],
        "livemode": False,
        "metadata": item["metadata"],
        "period": item["period"],
        "price": item["price"],
        "proration": False,
        "quantity": item["quantity"],
        "subscription": item.get("subscription"),
        "type": "invoiceitem",
    }


async def create_invoice_item(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    store = ctx.state.store
    customer = live_customer(ctx, p["customer"], param="customer")
    quantity = int(p.get("quantity", 1))
    price = None
    if "price" in p:
        price = store.get("price", p["price"])
        if price is None:
            raise StripeError(
                400, f"No such price: '{p['price']}'", code="resource_missing", param="price"
            )
        amount = int(price["unit_amount"]) * quantity
    elif "amount" in p:
        amount = int(p["amount"])
    else:
        raise StripeError(
            400,
            "Missing required param: amount or price.",
            code="parameter_missing",
            param="amount",
        )
    currency = p.get("currency") or customer.get("currency") or "eur"
    if currency not in CURRENCIES:
        raise StripeError(400, f"Invalid currency: {currency}", param="currency")
    invoice = None
    if "invoice" in p:
        invoice = store.get("invoice", p["invoice"])
        if invoice is None or invoice["customer"] != customer["id"]:
            raise StripeError(
                400, f"No such invoice: '{p['invoice']}'", code="resource_missing", param="invoice"
            )
        if invoice["status"] != "draft":
            raise StripeError(
                400,
                "You can only add invoice items to a draft invoice.",
                code="invoice_not_editable",
                param="invoice",
            )
    item = {
        "id": new_id("ii_"),
        "object": "invoiceitem",
        "amount": amount,
        "currency": currency,
        "customer": customer["id"],
        "date": ctx.now,
        "created": ctx.now,
        "description": p.get("description") or (price or {}).get("nickname"),
        "invoice": invoice["id"] if invoice else None,
        "livemode": False,
        "metadata": {k: v for k, v in (p.get("metadata") or {}).items() if v},
        "period": {"start": ctx.now, "end": ctx.now},
        "price": price,
        "quantity": quantity,
        "subscription": p.get("subscription"),
    }
    await store.put("invoiceitem", item["id"], item)
    if invoice is not None:
        new = clone(invoice)
        new["lines"]["data"].append(_item_line(new["id"], item))
        new["lines"]["total_count"] = len(new["lines"]["data"])
        recompute_invoice(new)
        await store.put("invoice", new["id"], new)
    return item


def invoice_routes(api: Api) -> list[Route]:
    plain = obj({"expand": expand_list()})
    writable: dict[str, Check] = {
        "metadata": metadata(),
        "description": string(1500),
        "auto_advance": boolean(),
        "days_until_due": integer(0, 1095),
        "expand": expand_list(),
    }
    listing = {
        **LIST,
        "customer": string(200),
        "subscription": string(200),
        "status": enum(*INVOICE_STATUSES),
        "collection_method": enum("charge_automatically", "send_invoice"),
    }
    create = obj(
        {
            **writable,
            "customer": string(200),
            "subscription": string(200),
            "collection_method": enum("charge_automatically", "send_invoice"),
            "currency": enum(*CURRENCIES),
            "pending_invoice_items_behavior": enum("exclude", "include"),
        },
        required=("customer",),
    )
    paying = obj(
        {
            "paid_out_of_band": boolean(),
            "forgive": boolean(),
            "off_session": boolean(),
            "payment_method": string(200),
            "expand": expand_list(),
        }
    )
    item = obj(
        {
            "customer": string(200),
            "price": string(200),
            "quantity": integer(1, 100000),
            "amount": integer(-99999999, 99999999),
            "currency": string(3),
            "description": string(500),
            "invoice": string(200),
            "subscription": string(200),
            "metadata": metadata(),
            "expand": expand_list(),
        },
        required=("customer",),
    )
    return [
        api.route(
            "GET", "/v1/invoices", obj(listing), list_invoices, returns="invoice", listing=True
        ),
        api.route(
            "GET",
            "/v1/invoices/search",
            obj(SEARCH, required=("query",)),
            search_invoices,
            returns="invoice",
            listing=True,
        ),
        api.route("POST", "/v1/invoices", create, create_invoice, returns="invoice"),
        api.route("GET", "/v1/invoices/{id}", plain, retrieve_invoice, returns="invoice"),
        api.route("POST", "/v1/invoices/{id}", obj(writable), update_invoice, returns="invoice"),
        api.route(
            "GET",
            "/v1/invoices/{id}/lines",
            obj(LIST),
            list_lines,
            returns="line_item",
            listing=True,
        ),
        api.route(
            "POST",
            "/v1/invoices/{id}/finalize",
            obj({"auto_advance": boolean(), "expand": expand_list()}),
            finalize_invoice,
            returns="invoice",
        ),
        api.route("POST", "/v1/invoices/{id}/pay", paying, pay_invoice, returns="invoice"),
        api.route("POST", "/v1/invoices/{id}/void", plain, void_invoice, returns="invoice"),
        api.route(
            "POST",
            "/v1/invoices/{id}/mark_uncollectible",
            plain,
            mark_uncollectible,
            returns="invoice",
        ),
        api.route("POST", "/v1/invoiceitems", item, create_invoice_item, returns="invoiceitem"),
    ]
