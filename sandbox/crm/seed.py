"""The demo world as the CRM holds it: accounts, one billing contact each, opportunities.

Planted drift shows here as the CRM sees it: ``crm_name`` (the account name spelled
differently) and ``crm_payment_terms`` (terms that disagree with the ERP).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.app import SandboxState
from sandbox.crm.schema import OBJECTS, derive, format_datetime
from sandbox.demo import DemoCompany, sf_id

__all__ = ["seed_crm"]


def _blank(object_name: str) -> dict[str, Any]:
    return dict.fromkeys(OBJECTS[object_name].fields)


def _billing_status(company: DemoCompany) -> str | None:
    """The latest invoice's status, as invoice propagation would have stamped it."""
    invoices = [inv for sub in company.subscriptions for inv in sub.invoices]
    if not invoices:
        return None
    return max(invoices, key=lambda inv: inv.created).status


def _account(company: DemoCompany) -> dict[str, Any]:
    stamp = format_datetime(company.created)
    record = _blank("Account")
    record.update(
        Id=company.crm_id,
        Name=company.crm_name or company.name,
        ERP_Customer_Id__c=company.bp,
        Industry=company.industry,
        Type="Customer",
        Segment__c=company.segment,
        Owner_Name__c=company.owner,
        BillingCity=company.city,
        BillingCountry=company.country,
        CurrencyIsoCode=company.currency,
        Payment_Terms__c=company.crm_payment_terms or company.payment_terms,
        Tax_Id__c=company.tax_id,
        Billing_Status__c=_billing_status(company),
        CreatedDate=stamp,
        LastModifiedDate=stamp,
        SystemModstamp=stamp,
    )
    return record


def _contact(company: DemoCompany) -> dict[str, Any]:
    stamp = format_datetime(company.created)
    record = _blank("Contact")
    record.update(
        Id=sf_id("003", 1000 + company.index),
        AccountId=company.crm_id,
        FirstName="Accounts",
        LastName="Payable",
        Email=company.email,
        Crosswalk_Key__c=f"{company.bp}-billing",
        CreatedDate=stamp,
        LastModifiedDate=stamp,
        SystemModstamp=stamp,
    )
    return record


def _opportunities(company: DemoCompany) -> list[dict[str, Any]]:
    out = []
    for n, opp in enumerate(company.opportunities):
        created = company.created + timedelta(days=1 + n)
        closed_at = datetime.combine(opp.close_date, datetime.min.time(), UTC)
        modified = closed_at if opp.is_closed else created
        record = _blank("Opportunity")
        record.update(
            Id=opp.id,
            AccountId=company.crm_id,
            Name=opp.name,
            StageName=opp.stage,
            Amount=float(opp.amount),
            CurrencyIsoCode=company.currency,
            CloseDate=opp.close_date.isoformat(),
            ERP_Order_Number__c=opp.erp_order,
            Products__c=";".join(opp.products),
            CreatedDate=format_datetime(created),
            LastModifiedDate=format_datetime(modified),
            SystemModstamp=format_datetime(modified),
        )
        derive(OBJECTS["Opportunity"], record)
        out.append(record)
    return out


async def seed_crm(state: SandboxState) -> None:
    """Write the demo world in three batches (no change events: seeding is not the API)."""
    companies = state.demo.companies
    store = state.store
    await store.put_many("Account", [(c.crm_id, _account(c)) for c in companies])
    await store.put_many("Contact", [(r["Id"], r) for r in map(_contact, companies)])
    await store.put_many(
        "Opportunity", [(r["Id"], r) for c in companies for r in _opportunities(c)]
    )
