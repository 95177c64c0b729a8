"""Customer onboarding: ``onboardCustomer``.

Steps, one customer (the operation's canonical id, chosen at acceptance) in order:

1. ``erp_partner`` - ERP business partner (``EnsureCustomer``; SAP check-before-create
   on ``BusinessPartnerIDByExtSystem`` = the operation's external id);
2. ``crm_account`` - CRM account upserted by external id ``ERP_Customer_Id__c`` = partner;
3. ``billing_customer`` - billing customer with ``metadata[erp_bp]`` and
   ``metadata[crm_account_id]`` (Stripe ``Idempotency-Key``);
4. ``support_org`` - support organization, ``create_or_update`` by ``external_id``.

Each id that comes back is linked in the cross-reference registry under the operation's
canonical id, in the transaction that records the step.

Compensation policy: forward recovery. Nothing is deleted: the ERP partner is the system
of record and the others are linked to it by external id, so a half-onboarded customer is
consistent as far as it goes, and replaying the dead letter (after fixing the cause)
finishes it without duplicates (every step is an upsert by a stable key). The operation
shows NEEDS_ATTENTION meanwhile; reconciliation also reports the missing records.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

from actors.errors import CrosswalkSystemError
from actors.messages import EnsureCustomer, FindCustomers, FindCustomersByTaxId
from canonical import Customer, System
from canonical.validation import (
    Problems,
    check_country,
    check_currency,
    check_legal_entity,
    check_owned,
    check_payment_terms,
    check_required,
    check_tax_id,
)
from gateway.processes.context import Accepted, CommandContext
from gateway.processes.errors import FieldProblem, ValidationFailed
from gateway.processes.payloads import customer_from_payload, customer_payload
from gateway.processes.saga import Flow, SagaView, Step

__all__ = ["FLOW", "validate"]

KIND = "onboardCustomer"

log = logging.getLogger(__name__)

#: input fields the caller may give at onboarding although another system owns them: the
#: onboarding creates the record in the owning system with these initial values
_INITIAL = ("name", "legalName", "taxId", "country", "paymentTerms", "currency", "email")
#: fields set later by their owner only (credit control, entitlements)
_OWNED_LATER = (("creditStatus", "credit_status"), ("supportTier", "support_tier"))
_CRM_FIELDS = ("segment", "industry", "owner")


def new_canonical_id() -> str:
    """A canonical customer id in the registry's own format (``cw_`` + time + random)."""
    return f"cw_{int(time.time() * 1000):012x}{secrets.token_hex(4)}"


async def validate(ctx: CommandContext, data: Mapping[str, Any]) -> Accepted:
    problems = Problems()
    name = data.get("name")
    check_required(problems, "name", name, max_len=80)
    legal_name = data.get("legalName") or name
    country = (data.get("country") or "").strip().upper()
    if check_required(problems, "country", country, max_len=2):
        check_country(problems, "country", country, ctx.reference)
    tax_id = data.get("taxId")
    if check_required(problems, "taxId", tax_id, max_len=32) and isinstance(tax_id, str):
        check_tax_id(problems, "taxId", tax_id, country, ctx.reference)
    if isinstance(legal_name, str) and legal_name.strip():
        field = "legalName" if data.get("legalName") else "name"
        check_legal_entity(problems, field, legal_name, country, ctx.reference)
    terms = data.get("paymentTerms")
    if check_required(problems, "paymentTerms", terms, max_len=8) and isinstance(terms, str):
        check_payment_terms(problems, "paymentTerms", terms, ctx.reference)
    entry = ctx.reference.countries.get(country)
    currency = data.get("currency") or (entry.currency if entry else None)
    if isinstance(currency, str):
        check_currency(problems, "currency", currency, country, ctx.reference)
    email = data.get("email")
    if email is not None and (not isinstance(email, str) or "@" not in email):
        problems.add("email", "must be an e-mail address like billing@example.com")
    external_id = data.get("externalId")
    if external_id is not None and (
        not isinstance(external_id, str) or not 1 <= len(external_id) <= 20
    ):
        problems.add("externalId", "must be 1 to 20 characters (SAP BusinessPartnerIDByExtSystem)")
    check_owned(
        problems,
        [(f, c) for f, c in _OWNED_LATER if data.get(f) is not None],
        ctx.caller.system,
        ctx.owner_of,
    )
    if problems:
        raise ValidationFailed(problems.items)
    assert isinstance(name, str)
    assert isinstance(tax_id, str)
    canonical_id = new_canonical_id()
    values = {
        "name": name.strip(),
        "legal_name": str(legal_name).strip(),
        "tax_id": tax_id.replace(" ", "").replace(".", "").upper(),
        "country": country,
        "payment_terms": terms,
        "currency": currency,
        "email": email,
        "segment": data.get("segment"),
        "industry": data.get("industry"),
        "owner": data.get("owner"),
        "credit_status": data.get("creditStatus"),
        "support_tier": data.get("supportTier"),
    }
    existing = await _existing_customer(ctx, values["tax_id"], values["name"], country)
    if existing is not None:
        raise ValidationFailed(
            [
                FieldProblem(
                    "taxId",
                    f'the ERP already has this company: customer(id: "erp:{existing.id}") '
                    f"({existing.name}); update it instead of onboarding it again",
                )
            ]
        )
    accepted = {
        "request": dict(data),
        "customer": {k: v for k, v in values.items() if v is not None},
        "externalId": external_id or f"CW-{canonical_id[3:19]}",
    }
    return Accepted(input=accepted, canonical_id=canonical_id, name=values["name"])


def _normal_name(name: str) -> str:
    """A company name compared without case, spaces or punctuation ("ACME  G.m.b.H.")."""
    return re.sub(r"[\W_]+", "", name.casefold())


async def _existing_customer(
    ctx: CommandContext, tax_id: str, name: str, country: str
) -> Customer | None:
    """The ERP customer this onboarding would duplicate: same tax id, or same name and
    country. Asked of the ERP itself, whatever idempotency key the caller sent, so a
    retry with a new key (or none) cannot create the company twice.

    When the ERP cannot answer, the onboarding is accepted (writes are accepted while a
    system is down and delivered later), and the check is not made for it: the gap is
    logged.
    """
    try:
        by_tax: tuple[Customer, ...] = await ctx.ask(System.ERP, FindCustomersByTaxId(tax_id))
        for customer in by_tax:
            if customer.country in (None, country):
                return customer
        wanted = _normal_name(name)
        # the ERP searches by case-blind substring: ask for the name with its spacing
        # tidied (few answers), then compare in full without punctuation
        by_name: tuple[Customer, ...] = await ctx.ask(
            System.ERP, FindCustomers(" ".join(name.split()), 20)
        )
        for customer in by_name:
            if _normal_name(customer.name or "") == wanted and customer.country in (None, country):
                return customer
    except (CrosswalkSystemError, TimeoutError) as exc:
        log.warning("onboarding accepted without the ERP duplicate check: %s", exc)
    return None


def _customer(view: SagaView) -> Mapping[str, Any]:
    value = view.input.get("customer")
    return value if isinstance(value, Mapping) else {}


def _ensure(system: System) -> Any:
    def build(payload: Mapping[str, Any], key: str) -> EnsureCustomer:
        return EnsureCustomer(
            idempotency_key=key,
            customer=customer_from_payload(system, payload["customer"]),
            external_id=payload["external_id"],
        )

    return build


def _record(customer: Customer) -> dict[str, Any]:
    return {"id": customer.id, "name": customer.name}


def _erp_payload(view: SagaView) -> dict[str, Any]:
    values = {k: v for k, v in _customer(view).items() if k not in _CRM_FIELDS}
    return {"customer": customer_payload(values), "external_id": view.input["externalId"]}


def _crm_payload(view: SagaView) -> dict[str, Any]:
    bp = view.result("erp_partner")["id"]
    return {"customer": customer_payload(_customer(view), {"erp": bp}), "external_id": bp}


def _billing_payload(view: SagaView) -> dict[str, Any]:
    bp = view.result("erp_partner")["id"]
    crm = view.result("crm_account")["id"]
    return {
        "customer": customer_payload(_customer(view), {"erp": bp, "crm": crm}),
        "external_id": bp,
    }


def _support_payload(view: SagaView) -> dict[str, Any]:
    bp = view.result("erp_partner")["id"]
    return {"customer": customer_payload(_customer(view), {"erp": bp}), "external_id": bp}


def _link(system: System) -> Any:
    return lambda recorded: {system: str(recorded["id"])}


FLOW = Flow(
    kind=KIND,
    steps=(
        Step(
            "erp_partner",
            System.ERP,
            _erp_payload,
            _ensure(System.ERP),
            _record,
            links=_link(System.ERP),
        ),
        Step(
            "crm_account",
            System.CRM,
            _crm_payload,
            _ensure(System.CRM),
            _record,
            links=_link(System.CRM),
        ),
        Step(
            "billing_customer",
            System.BILLING,
            _billing_payload,
            _ensure(System.BILLING),
            _record,
            links=_link(System.BILLING),
        ),
        Step(
            "support_org",
            System.SUPPORT,
            _support_payload,
            _ensure(System.SUPPORT),
            _record,
            links=_link(System.SUPPORT),
        ),
    ),
    compensation={
        "erp_partner": "nothing was created anywhere; the customer waits for replay",
        "crm_account": "the ERP partner is kept (system of record); CRM, billing and support wait",
        "billing_customer": "ERP partner and CRM account are kept; billing and support wait",
        "support_org": "ERP, CRM and billing records are kept; the support organization waits",
    },
)
