"""The ERP's part of the demo world, in SAP's shapes.

Choices (documented so the gateway's reconciliation can rely on them):

- ``BusinessPartner`` = ``Customer`` = the company's ``bp``; category ``"2"`` (organisation);
  ``BusinessPartnerFullName`` and ``OrganizationBPName1`` = the true name (the CRM's
  ``crm_name`` drift lives only in the CRM); ``SearchTerm1`` = the first word of the name,
  upper-cased (20 characters at most).
- ``BusinessPartnerIDByExtSystem`` = the CRM account id the customer was onboarded from
  (20 characters fit an 18-character Salesforce id).
- Tax number: ``A_BusinessPartnerTaxNumber`` with ``BPTaxType`` = ``<country>0`` (SAP's
  VAT-number categories: ``DE0``, ``FR0`` ...; ``US0`` stands in for the US EIN).
- Address: one ``A_BusinessPartnerAddress`` with ``Country`` and ``CityName``.
- Payment terms and currency: ``A_CustomerSalesArea`` (sales organisation 1010, channel 10,
  division 00) ``CustomerPaymentTerms`` and ``Currency``; the ERP holds the true terms
  (``crm_payment_terms`` drift lives only in the CRM).
- Credit: a customer with an uncollectible invoice has ``OrderIsBlockedForCustomer = "01"``.
- Sales orders from ``company.orders``; billing documents from every subscription invoice
  that has an ``erp_document`` (``AccountingPostingStatus`` ``"C"`` when posted, else
  ``"A"``; cancelled when the invoice was voided).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sandbox.app import SandboxState
from sandbox.demo import PRODUCTS, DemoCompany

__all__ = ["MATERIAL_PRICES", "SALES_AREA", "seed", "tax_type"]

SALES_AREA = {"SalesOrganization": "1010", "DistributionChannel": "10", "Division": "00"}
#: the material price list sales orders are priced from (the demo world's products)
MATERIAL_PRICES = {p.material: (p.unit_amount, p.name) for p in PRODUCTS}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _day(moment: datetime) -> int:
    start = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    return _ms(start)


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def tax_type(country: str) -> str:
    return f"{country}0"


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def _company_rows(c: DemoCompany) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    changed = _micros(c.created)
    blocked = any(inv.status == "uncollectible" for s in c.subscriptions for inv in s.invoices)
    rows: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    rows["A_BusinessPartner"] = [
        (
            c.bp,
            {
                "BusinessPartner": c.bp,
                "Customer": c.bp,
                "BusinessPartnerCategory": "2",
                "BusinessPartnerGrouping": "BP02",
                "BusinessPartnerFullName": c.name,
                "OrganizationBPName1": c.name[:40],
                "OrganizationBPName2": "",
                "SearchTerm1": c.name.split()[0].upper()[:20],
                "SearchTerm2": c.city.upper()[:20],
                "BusinessPartnerIDByExtSystem": c.crm_id,
                "Language": "EN",
                "BusinessPartnerIsBlocked": False,
                "CreationDate": _day(c.created),
                "LastChangeDate": _day(c.created),
                "_changed": changed,
            },
        )
    ]
    rows["A_BusinessPartnerAddress"] = [
        (
            f"{c.bp}\x1f1",
            {
                "BusinessPartner": c.bp,
                "AddressID": "1",
                "Country": c.country,
                "Region": "",
                "CityName": c.city,
                "PostalCode": f"{10000 + c.index:05d}",
                "StreetName": "Market Street",
                "HouseNumber": str(1 + c.index % 120),
                "Language": "EN",
                "_changed": changed,
            },
        )
    ]
    rows["A_BusinessPartnerTaxNumber"] = [
        (
            f"{c.bp}\x1f{tax_type(c.country)}",
            {
                "BusinessPartner": c.bp,
                "BPTaxType": tax_type(c.country),
                "BPTaxNumber": c.tax_id,
                "BPTaxLongNumber": "",
                "_changed": changed,
            },
        )
    ]
    rows["A_Customer"] = [
        (
            c.bp,
            {
                "Customer": c.bp,
                "CustomerName": c.name[:80],
                "CustomerFullName": c.name,
                "CustomerAccountGroup": "CUST",
                "OrderIsBlockedForCustomer": "01" if blocked else "",
                "DeliveryIsBlocked": "",
                "BillingIsBlockedForCustomer": "",
                "PostingIsBlocked": False,
                "DeletionIndicator": False,
                "CreationDate": _day(c.created),
                "_changed": changed,
            },
        )
    ]
    area = {"Customer": c.bp, **SALES_AREA}
    rows["A_CustomerSalesArea"] = [
        (
            "\x1f".join((c.bp, *SALES_AREA.values())),
            {
                **area,
                "Currency": c.currency,
                "CustomerPaymentTerms": c.payment_terms,
                "IncotermsClassification": "EXW",
                "SalesDistrict": "",
                "_changed": changed,
            },
        )
    ]
    orders: list[tuple[str, dict[str, Any]]] = []
    items: list[tuple[str, dict[str, Any]]] = []
    for order in c.orders:
        orders.append(
            (
                order.id,
                {
                    "SalesOrder": order.id,
                    "SalesOrderType": "OR",
                    **{k: v for k, v in SALES_AREA.items() if k != "Division"},
                    "OrganizationDivision": "00",
                    "SoldToParty": c.bp,
                    "PurchaseOrderByCustomer": order.purchase_order,
                    "CustomerPaymentTerms": c.payment_terms,
                    "CreationDate": _day(order.created),
                    "LastChangeDateTime": _ms(order.created),
                    "TotalNetAmount": _money(order.net_amount),
                    "TransactionCurrency": "EUR",
                    "OverallSDProcessStatus": order.status,
                    "_changed": _micros(order.created),
                },
            )
        )
        for n, (material, quantity, amount) in enumerate(order.items, 1):
            number = str(n * 10)
            items.append(
                (
                    f"{order.id}\x1f{number}",
                    {
                        "SalesOrder": order.id,
                        "SalesOrderItem": number,
                        "SalesOrderItemCategory": "TAN",
                        "SalesOrderItemText": MATERIAL_PRICES[material][1],
                        "Material": material,
                        "RequestedQuantity": str(quantity.quantize(Decimal("0.001"))),
                        "RequestedQuantityUnit": "EA",
                        "NetAmount": _money(amount),
                        "TransactionCurrency": "EUR",
                        "_changed": _micros(order.created),
                    },
                )
            )
    rows["A_SalesOrder"] = orders
    rows["A_SalesOrderItem"] = items
    docs: list[tuple[str, dict[str, Any]]] = []
    for sub in c.subscriptions:
        for inv in sub.invoices:
            if inv.erp_document is None:
                continue
            docs.append(
                (
                    inv.erp_document,
                    {
                        "BillingDocument": inv.erp_document,
                        "BillingDocumentType": "F2",
                        "SDDocumentCategory": "M",
                        **SALES_AREA,
                        "CompanyCode": "1010",
                        "BillingDocumentDate": _day(inv.created),
                        "BillingDocumentIsCancelled": inv.status == "void",
                        "CreationDate": _day(inv.created),
                        "LastChangeDateTime": _ms(inv.created),
                        "SoldToParty": c.bp,
                        "PayerParty": c.bp,
                        "PurchaseOrderByCustomer": inv.id,
                        "CustomerPaymentTerms": c.payment_terms,
                        "TotalNetAmount": _money(inv.subtotal),
                        "TaxAmount": _money(inv.tax),
                        "TotalGrossAmount": _money(inv.total),
                        "TransactionCurrency": "EUR",
                        "AccountingPostingStatus": "C" if inv.posted else "A",
                        "_changed": _micros(inv.created),
                    },
                )
            )
    rows["A_BillingDocument"] = docs
    return rows


async def seed(state: SandboxState) -> None:
    """Write the ERP's records for every demo company, in one batch per entity set."""
    batches: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for company in state.demo.companies:
        for kind, rows in _company_rows(company).items():
            batches.setdefault(kind, []).extend(rows)
    for kind, rows in batches.items():
        await state.store.put_many(kind, rows)
    # number ranges continue after the seeded documents
    companies = state.demo.companies
    tops = {
        "business_partner": 1000000 + len(companies) - 1,
        "sales_order": max((int(i) for i, _ in batches.get("A_SalesOrder", [])), default=5000000),
        "billing_document": max(
            (int(i) for i, _ in batches.get("A_BillingDocument", [])), default=90000000
        ),
        "credit_memo_request": 60000000,
    }
    for name, top in tops.items():
        await state.store.next_number(name, start=top)
