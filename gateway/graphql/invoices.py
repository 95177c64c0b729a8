"""Invoices as a customer sees them: billing's invoices and the ERP's billing documents
joined into one list, newest first.

A billing invoice and the ERP document posted for it are one invoice (matched by the
document number billing keeps, or by the billing id the ERP document keeps); either
without the other is listed alone, with ``sources`` saying which systems know it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import strawberry

from canonical import Invoice, System
from gateway.graphql.types import InvoiceRecord

__all__ = ["join_invoices"]


def join_invoices(billing: Sequence[Invoice], erp: Sequence[Invoice]) -> list[InvoiceRecord]:
    by_document = {doc.id: doc for doc in erp}
    by_billing = {doc.billing_invoice: doc for doc in erp if doc.billing_invoice}
    used: set[str] = set()
    joined: list[InvoiceRecord] = []
    for inv in billing:
        doc = by_document.get(inv.erp_document or "") or by_billing.get(inv.id)
        if doc is not None:
            used.add(doc.id)
        joined.append(
            InvoiceRecord(
                id=strawberry.ID(inv.id),
                status=inv.status,
                total=inv.total,
                currency=inv.currency,
                amount_due=inv.amount_due,
                tax=inv.tax,
                due_date=inv.due_date,
                created_at=inv.created_at,
                billing_invoice_id=inv.id,
                erp_document_id=doc.id if doc else inv.erp_document,
                posted=doc.posted if doc else None,
                posting_status=doc.status if doc else None,
                sources=[System.BILLING, System.ERP] if doc else [System.BILLING],
            )
        )
    for doc in erp:
        if doc.id in used:
            continue
        joined.append(
            InvoiceRecord(
                id=strawberry.ID(doc.id),
                status=doc.status,
                total=doc.total,
                currency=doc.currency,
                amount_due=doc.amount_due,
                tax=doc.tax,
                due_date=doc.due_date,
                created_at=doc.created_at,
                billing_invoice_id=doc.billing_invoice,
                erp_document_id=doc.id,
                posted=doc.posted,
                posting_status=doc.status,
                sources=[System.ERP],
            )
        )
    joined.sort(key=lambda i: i.created_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    return joined
