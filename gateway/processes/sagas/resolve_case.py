"""Case-to-resolution, its end: ``resolveCase`` (its start, ``openCase`` and
``escalateCase``, is in ``gateway.processes.sagas.case_to_resolution``).

Validation: the customer exists with a support organization; the case is that
customer's and still open; a ``credit``, if given, names one of the customer's billing
invoices (finalized: open or paid), an amount above zero and at most what the invoice
still allows, and one of Stripe's credit note reasons. A credit needs the customer's
ERP business partner too.

Steps, in order for the customer:

1. ``billing_credit_note`` (with a credit) - a Stripe credit note on the invoice
   (``Idempotency-Key``; ``metadata[crosswalk_key]`` finds it after the key window);
2. ``erp_credit_memo`` (with a credit) - an ERP credit memo request for the same amount,
   ``PurchaseOrderByCustomer`` = ``<case>-credit`` (check-before-create), referring to
   the invoice's ERP billing document when there is one;
3. ``resolve_case`` - the ticket solved, with the resolution (and the credit's numbers)
   as a public comment.

The CRM learns it through the support desk's own event: a case's status change becomes a
Task on the account (``caseStatusToCrm``), the same as for a case solved in the desk.

Compensation policy: forward recovery. A credit note is money owed to the customer; once
issued it is not taken back. If the ERP credit memo request or the ticket update cannot
be written, the operation shows NEEDS_ATTENTION and they are replayed after the cause is
fixed; nothing is undone.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from actors.messages import (
    CreateCreditNote,
    EnsureCreditMemoRequest,
    GetBillingDocuments,
    GetInvoices,
    UpdateCase,
)
from canonical import Invoice, System
from canonical.validation import Problems, check_required
from gateway.processes.context import Accepted, CommandContext
from gateway.processes.customers import resolve_customer
from gateway.processes.errors import ValidationFailed
from gateway.processes.saga import Flow, SagaView, Step
from gateway.processes.sagas.case_to_resolution import find_open_case

__all__ = ["FLOW", "validate"]

KIND = "resolveCase"
REASONS = ("duplicate", "fraudulent", "order_change", "product_unsatisfactory")
#: SAP order reason for a credit after a complaint
SAP_REASON = "002"


def _amount(problems: Problems, raw: Any) -> Decimal | None:
    try:
        amount = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        problems.add("credit.amount", f"must be a decimal amount, got {raw!r}")
        return None
    if not amount.is_finite() or amount <= 0:
        problems.add("credit.amount", f"must be more than zero, got {raw}")
        return None
    if amount != amount.quantize(Decimal("0.01")):
        problems.add("credit.amount", f"has more than two decimals: {raw}")
        return None
    return amount


async def validate(ctx: CommandContext, data: Mapping[str, Any]) -> Accepted:
    problems = Problems()
    check_required(problems, "customerId", data.get("customerId"), max_len=120)
    check_required(problems, "caseId", data.get("caseId"), max_len=40)
    check_required(problems, "resolution", data.get("resolution"), max_len=10_000)
    credit = data.get("credit")
    if credit is not None and not isinstance(credit, Mapping):
        problems.add("credit", "must be an object with invoiceId, amount and reason")
        credit = None
    if problems:
        raise ValidationFailed(problems.items)
    need = (System.SUPPORT, System.BILLING, System.ERP) if credit else (System.SUPPORT,)
    customer = await resolve_customer(
        ctx, problems, "customerId", str(data["customerId"]), need=need
    )
    if customer is None:
        raise ValidationFailed(problems.items)
    organization = customer.ids[System.SUPPORT]
    case_id = str(data["caseId"]).strip()
    await find_open_case(ctx, problems, data, organization, closed="already {status}")
    accepted: dict[str, Any] = {
        "request": dict(data),
        "customerId": data["customerId"],
        "caseId": case_id,
        "resolution": str(data["resolution"]).strip(),
        "organization": organization,
    }
    if credit:
        await _check_credit(ctx, problems, credit, customer.ids, case_id, accepted)
    if problems:
        raise ValidationFailed(problems.items)
    return Accepted(
        input=accepted,
        canonical_id=customer.canonical_id,
        links=dict(customer.ids),
        name=customer.name,
    )


async def _check_credit(
    ctx: CommandContext,
    problems: Problems,
    credit: Mapping[str, Any],
    ids: Mapping[System, str],
    case_id: str,
    accepted: dict[str, Any],
) -> None:
    invoice_id = str(credit.get("invoiceId") or "").strip()
    if not invoice_id:
        problems.add("credit.invoiceId", "is required with a credit")
        return
    amount = _amount(problems, credit.get("amount"))
    reason = str(credit.get("reason") or "product_unsatisfactory")
    if reason not in REASONS:
        problems.add("credit.reason", f"must be one of {', '.join(REASONS)}, got {reason!r}")
    billing = ids[System.BILLING]
    invoices: tuple[Invoice, ...] = (await ctx.ask(System.BILLING, GetInvoices((billing,)))).get(
        billing, ()
    )
    invoice = next((i for i in invoices if i.id == invoice_id), None)
    if invoice is None:
        problems.add("credit.invoiceId", f"the customer has no invoice {invoice_id!r}")
        return
    if invoice.status not in ("open", "paid"):
        problems.add(
            "credit.invoiceId", f"invoice {invoice_id} is {invoice.status}: only a finalized "
            "(open or paid) invoice can be credited"
        )  # fmt: skip
    if amount is not None and amount > invoice.total:
        problems.add("credit.amount", f"{amount} is more than the invoice's total {invoice.total}")
    erp = ids[System.ERP]
    documents: tuple[Invoice, ...] = (await ctx.ask(System.ERP, GetBillingDocuments((erp,)))).get(
        erp, ()
    )
    document = next(
        (d for d in documents if d.billing_invoice == invoice_id or d.id == invoice.erp_document),
        None,
    )
    accepted["credit"] = {
        "invoice": invoice_id,
        "amount": str(amount) if amount is not None else None,
        "currency": invoice.currency,
        "reason": reason,
        "memo": f"Case {case_id}",
        "erpCustomer": erp,
        "billingDocument": document.id if document else None,
        "purchaseOrder": f"{case_id}-credit",
    }


# ---------------------------------------------------------------- steps


def _credit(view: SagaView) -> Any:
    credit = view.input.get("credit")
    return dict(credit) if credit else None


def _credit_note_message(payload: Mapping[str, Any], key: str) -> CreateCreditNote:
    return CreateCreditNote(
        idempotency_key=key,
        invoice_id=str(payload["invoice"]),
        amount=Decimal(str(payload["amount"])),
        reason=str(payload["reason"]),
        memo=str(payload["memo"]),
    )


def _credit_memo_message(payload: Mapping[str, Any], key: str) -> EnsureCreditMemoRequest:
    return EnsureCreditMemoRequest(
        idempotency_key=key,
        customer_id=str(payload["erpCustomer"]),
        purchase_order=str(payload["purchaseOrder"]),
        billing_document=payload.get("billingDocument"),
        amount=Decimal(str(payload["amount"])),
        currency=str(payload["currency"]).upper(),
        reason=SAP_REASON,
    )


def _resolve_payload(view: SagaView) -> dict[str, Any]:
    lines = [str(view.input["resolution"])]
    note = view.result("billing_credit_note").get("id")
    memo = view.result("erp_credit_memo").get("id")
    credit = view.input.get("credit")
    if credit and note:
        lines.append(
            f"A credit of {credit['amount']} {str(credit['currency']).upper()} was issued "
            f"on invoice {credit['invoice']} (credit note {note}"
            + (f", ERP credit memo request {memo}" if memo else "")
            + ")."
        )
    return {
        "id": view.input["caseId"],
        "fields": {"status": "solved", "comment": {"body": "\n\n".join(lines), "public": True}},
    }


def _resolve_message(payload: Mapping[str, Any], key: str) -> UpdateCase:
    return UpdateCase(idempotency_key=key, id=str(payload["id"]), fields=dict(payload["fields"]))


def _id_record(result: Any) -> dict[str, Any]:
    return {"id": result if isinstance(result, str) else getattr(result, "id", None)}


FLOW = Flow(
    kind=KIND,
    steps=(
        Step("billing_credit_note", System.BILLING, _credit, _credit_note_message, _id_record),
        Step("erp_credit_memo", System.ERP, _credit, _credit_memo_message, _id_record),
        Step("resolve_case", System.SUPPORT, _resolve_payload, _resolve_message, _id_record),
    ),
    compensation={
        "billing_credit_note": "nothing was written; the credit and the resolution wait",
        "erp_credit_memo": "the credit note stands (money owed to the customer); the ERP "
        "credit memo request and the resolution wait for replay",
        "resolve_case": "the credit stands in billing and the ERP; the ticket stays open "
        "until the update is replayed",
    },
)
