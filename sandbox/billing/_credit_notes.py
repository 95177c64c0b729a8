"""Credit notes: issue one against a finalized invoice, retrieve, list (and its lines), void.

A credit note first lowers what is still owed on its invoice: on an ``open`` invoice its
amount is ``pre_payment_amount`` (the invoice's ``pre_payment_credit_notes_amount`` grows,
its ``amount_due`` and ``amount_remaining`` shrink; credited down to zero, the invoice is
``paid``). On a ``paid`` invoice it is ``post_payment_amount``, recorded as credited
outside Stripe (``out_of_band_amount``: the sandbox has no refunds or customer balance).
``type`` says which: ``pre_payment``, ``post_payment`` or ``mixed``. The credit notes of
an invoice (voided ones aside) may not add up to more than its ``total``.

Sandbox limits: lines are ``custom_line_item`` only (no ``invoice_line_item`` credits)
and carry no tax; ``amount`` alone becomes one custom line. A credit note with a
pre-payment part can be voided only while its invoice is still ``open``.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from sandbox.billing._customers import LIST, changed
from sandbox.billing._errors import StripeError
from sandbox.billing._forms import (
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
from sandbox.billing._objects import clone, new_id, settle_invoice

__all__ = ["REASONS", "credit_note_routes"]

REASONS = ("duplicate", "fraudulent", "order_change", "product_unsatisfactory")
_MAX_AMOUNT = 99999999


def _credit_note(ctx: Ctx) -> dict[str, Any]:
    note_id = ctx.path("id")
    doc = ctx.state.store.get("credit_note", note_id)
    if doc is None:
        raise StripeError(
            404, f"No such credit note: '{note_id}'", code="resource_missing", param="id"
        )
    return doc


def _creditable_invoice(ctx: Ctx, invoice_id: str) -> dict[str, Any]:
    invoice = ctx.state.store.get("invoice", invoice_id)
    if invoice is None:
        raise StripeError(
            400, f"No such invoice: '{invoice_id}'", code="resource_missing", param="invoice"
        )
    if invoice["status"] not in ("open", "paid"):
        raise StripeError(
            400,
            f"Invoice {invoice_id} is {invoice['status']}: credit notes can only be issued "
            "for finalized invoices that are open or paid.",
            code="invoice_not_editable",
            param="invoice",
        )
    return invoice


def _lines(note_id: str, p: dict[str, Any]) -> list[dict[str, Any]]:
    """The credit note's lines: the ``lines[]`` given, or one line of ``amount``."""
    given = p.get("lines") or []
    lines: list[dict[str, Any]] = []
    for n, line in enumerate(given):
        for name in ("unit_amount", "description"):
            if line.get(name) in (None, ""):
                param = f"lines[{n}][{name}]"
                raise StripeError(
                    400,
                    f"Missing required param: {param} (needed for a custom_line_item).",
                    code="parameter_missing",
                    param=param,
                )
        quantity = int(line.get("quantity", 1))
        unit = int(line["unit_amount"])
        lines.append(_line(note_id, unit * quantity, line["description"], quantity, unit))
    if not given and "amount" in p:
        amount = int(p["amount"])
        lines.append(_line(note_id, amount, p.get("memo") or None, 1, amount))
    return lines


def _line(
    note_id: str, amount: int, description: str | None, quantity: int, unit_amount: int
) -> dict[str, Any]:
    return {
        "id": new_id("cnli_"),
        "object": "credit_note_line_item",
        "amount": amount,
        "credit_note": note_id,
        "description": description,
        "discount_amount": 0,
        "discount_amounts": [],
        "invoice_line_item": None,
        "livemode": False,
        "quantity": quantity,
        "tax_amounts": [],
        "tax_rates": [],
        "type": "custom_line_item",
        "unit_amount": unit_amount,
        "unit_amount_decimal": str(unit_amount),
    }


def _credited(ctx: Ctx, invoice_id: str) -> tuple[int, int]:
    """(sum of the invoice's issued credit notes, how many it has, voided ones too)."""
    notes = [d for d in ctx.state.store.iter("credit_note") if d["invoice"] == invoice_id]
    return sum(int(d["amount"]) for d in notes if d["status"] == "issued"), len(notes)


async def create_credit_note(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    store = ctx.state.store
    invoice = _creditable_invoice(ctx, p["invoice"])
    note_id = new_id("cn_")
    lines = _lines(note_id, p)
    if not lines:
        raise StripeError(
            400,
            "Missing required param: amount (or lines) says how much to credit.",
            code="parameter_missing",
            param="amount",
        )
    amount = sum(int(line["amount"]) for line in lines)
    if "amount" in p and p.get("lines") and int(p["amount"]) != amount:
        raise StripeError(
            400,
            f"The amount ({p['amount']}) must equal the sum of the lines ({amount}).",
            param="amount",
        )
    if amount <= 0:
        raise StripeError(400, "The credit note amount must be greater than 0.", param="amount")
    credited, count = _credited(ctx, invoice["id"])
    if credited + amount > int(invoice["total"]):
        raise StripeError(
            400,
            f"The credit note amount ({amount}) plus the invoice's earlier credit notes "
            f"({credited}) may not exceed the invoice total ({invoice['total']}).",
            param="amount",
        )
    pre = min(amount, int(invoice["amount_remaining"])) if invoice["status"] == "open" else 0
    post = amount - pre
    note = {
        "id": note_id,
        "object": "credit_note",
        "amount": amount,
        "amount_shipping": 0,
        "created": ctx.now,
        "currency": invoice["currency"],
        "customer": invoice["customer"],
        "customer_balance_transaction": None,
        "discount_amount": 0,
        "discount_amounts": [],
        "effective_at": ctx.now,
        "invoice": invoice["id"],
        "lines": {
            "object": "list",
            "data": lines,
            "has_more": False,
            "total_count": len(lines),
            "url": f"/v1/credit_notes/{note_id}/lines",
        },
        "livemode": False,
        "memo": p.get("memo") or None,
        "metadata": {k: v for k, v in (p.get("metadata") or {}).items() if v},
        "number": f"{invoice['number']}-CN-{count + 1:02d}",
        "out_of_band_amount": post or None,
        "pdf": None,
        "post_payment_amount": post,
        "pre_payment_amount": pre,
        "reason": p.get("reason"),
        "refunds": [],
        "shipping_cost": None,
        "status": "issued",
        "subtotal": amount,
        "subtotal_excluding_tax": amount,
        "total": amount,
        "total_excluding_tax": amount,
        "type": "mixed" if pre and post else "pre_payment" if pre else "post_payment",
        "voided_at": None,
    }
    inv = clone(invoice)
    inv["pre_payment_credit_notes_amount"] = int(inv["pre_payment_credit_notes_amount"]) + pre
    inv["post_payment_credit_notes_amount"] = int(inv["post_payment_credit_notes_amount"]) + post
    settle_invoice(inv)
    settled = inv["status"] == "open" and inv["amount_remaining"] == 0
    if settled:
        # nothing is left to collect: Stripe marks the invoice paid
        inv["status"], inv["paid"] = "paid", True
        inv["status_transitions"]["paid_at"] = ctx.now
        settle_invoice(inv)
    await store.put("credit_note", note_id, note)
    await store.put("invoice", inv["id"], inv)
    await ctx.emit("credit_note.created", note)
    await ctx.emit("invoice.updated", inv, changed(invoice, inv))
    if settled:
        await ctx.emit("invoice.paid", inv)
    return note


async def retrieve_credit_note(ctx: Ctx) -> dict[str, Any]:
    return _credit_note(ctx)


async def list_credit_notes(ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    everything = ctx.state.store.all("credit_note")
    filters = {k: p[k] for k in ("invoice", "customer") if k in p}
    docs = [
        d
        for d in everything
        if all(d.get(k) == v for k, v in filters.items())
        and matches_created(int(d["created"]), p.get("created"))
    ]
    return paginate(docs, p, "/v1/credit_notes", everything=everything)


async def void_credit_note(ctx: Ctx) -> dict[str, Any]:
    old = _credit_note(ctx)
    store = ctx.state.store
    if old["status"] != "issued":
        raise StripeError(
            400,
            f"Credit note {old['id']} is already void.",
            code="credit_note_already_voided",
        )
    invoice = store.get("invoice", old["invoice"])
    assert invoice is not None, "a credit note's invoice is never deleted"
    pre, post = int(old["pre_payment_amount"]), int(old["post_payment_amount"])
    if pre and invoice["status"] != "open":
        raise StripeError(
            400,
            f"Credit note {old['id']} lowered the amount due of invoice {invoice['id']}, which "
            f"is now {invoice['status']}: it can only be voided while the invoice is open.",
            code="invoice_not_editable",
        )
    note = clone(old)
    note["status"], note["voided_at"] = "void", ctx.now
    inv = clone(invoice)
    inv["pre_payment_credit_notes_amount"] = int(inv["pre_payment_credit_notes_amount"]) - pre
    inv["post_payment_credit_notes_amount"] = int(inv["post_payment_credit_notes_amount"]) - post
    settle_invoice(inv)
    await store.put("credit_note", note["id"], note)
    await store.put("invoice", inv["id"], inv)
    await ctx.emit("credit_note.voided", note)
    await ctx.emit("invoice.updated", inv, changed(invoice, inv))
    return note


async def list_lines(ctx: Ctx) -> dict[str, Any]:
    note = _credit_note(ctx)
    lines = [dict(line, created=0) for line in note["lines"]["data"]]
    page = paginate(lines, ctx.params, f"/v1/credit_notes/{note['id']}/lines", everything=lines)
    for line in page["data"]:
        line.pop("created", None)
    return page


def credit_note_routes(api: Api) -> list[Route]:
    line = obj(
        {
            "type": enum("custom_line_item"),
            "unit_amount": integer(0, _MAX_AMOUNT),
            "quantity": integer(1, 100000),
            "description": string(500),
        },
        required=("type",),
    )
    create = obj(
        {
            "invoice": string(200),
            "amount": integer(0, _MAX_AMOUNT),
            "lines": list_of(line),
            "reason": enum(*REASONS),
            "memo": string(5000),
            "metadata": metadata(),
            "expand": expand_list(),
        },
        required=("invoice",),
    )
    listing = obj({**LIST, "invoice": string(200), "customer": string(200)})
    plain = obj({"expand": expand_list()})
    return [
        api.route(
            "GET",
            "/v1/credit_notes",
            listing,
            list_credit_notes,
            returns="credit_note",
            listing=True,
        ),
        api.route("POST", "/v1/credit_notes", create, create_credit_note, returns="credit_note"),
        api.route(
            "GET", "/v1/credit_notes/{id}", plain, retrieve_credit_note, returns="credit_note"
        ),
        api.route(
            "GET",
            "/v1/credit_notes/{id}/lines",
            obj(LIST),
            list_lines,
            returns="credit_note_line_item",
            listing=True,
        ),
        api.route(
            "POST", "/v1/credit_notes/{id}/void", plain, void_credit_note, returns="credit_note"
        ),
    ]
