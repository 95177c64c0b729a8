"""The ERP connector: SAP S/4HANA OData V2 <-> the canonical model, message by message.

Customers are business partners (``API_BUSINESS_PARTNER``), orders ``A_SalesOrder``,
invoices ``A_BillingDocument``, credits ``A_CreditMemoRequest``
(``API_CREDIT_MEMO_REQUEST_SRV``). The rest of the ERP package: ``mapping`` (entities <->
canonical records), ``paging`` (the session's CSRF and cookie rules, ``or``-chunked
batched reads, ``$batch``, ``__next`` links, change feeds), ``batch`` (the ``$batch``
wire format) and ``errors`` (SAP's error table).

SAP's protocol rules handled here, because the protocol demands the second call:

- changes to existing entities send ``If-Match`` with the entity's ETag; a 412 re-reads
  the entity and tries once more;
- SAP has no idempotency header: creates check first (``BusinessPartnerIDByExtSystem``
  for partners, ``PurchaseOrderByCustomer`` for sales orders and credit memo requests), so
  a repeated message finds what the first one made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actors.erp.mapping import (
    SALES_AREA,
    UPDATABLE,
    PartnerParts,
    credit_memo_request_id,
    meta,
    patches,
    split_name,
    to_customer,
    to_invoice,
    to_order,
)
from actors.erp.paging import BD, BP, CMR, CUSTOMER_EXPAND, SO, ODataPaging, key_path, literal
from actors.errors import Rejected
from actors.messages import (
    EnsureBillingDocument,
    EnsureCreditMemoRequest,
    EnsureCustomer,
    EnsureSalesOrder,
    FindCustomerByXRef,
    FindCustomers,
    FindCustomersByTaxId,
    GetBillingDocument,
    GetBillingDocuments,
    GetChanges,
    GetCustomers,
    GetOrders,
    ListCustomers,
    Message,
    Page,
    UpdateCustomer,
)
from canonical.models import Customer, Invoice, Order, System

__all__ = ["ErpConnector"]


class ErpConnector(ODataPaging):
    """SAP S/4HANA OData V2 for the ERP actor: partners, sales orders, billing documents."""

    system = System.ERP

    # ------------------------------------------------------------------ dispatch

    async def handle(self, message: Message) -> object:
        match message:
            case GetCustomers(ids=ids):
                return await self._get_customers(ids)
            case FindCustomers(text=text, limit=limit):
                return await self._find_customers(text, limit)
            case FindCustomersByTaxId(tax_id=tax_id):
                return await self._customers_by_tax_id(tax_id)
            case ListCustomers(cursor=cursor, limit=limit):
                return await self._list_customers(cursor, limit)
            case FindCustomerByXRef(erp_bp=erp_bp):
                return await self._customer_by_bp(erp_bp)
            case GetOrders(customer_ids=ids):
                return await self._get_orders(ids)
            case GetBillingDocuments(customer_ids=ids):
                return await self._get_billing_documents(ids)
            case GetBillingDocument(id=doc_id):
                return await self._get_billing_document(doc_id)
            case GetChanges(feed=feed, cursor=cursor):
                return await self._changes(feed, cursor)
            case EnsureCustomer():
                return await self._ensure_customer(message)
            case UpdateCustomer():
                return await self._update_customer(message)
            case EnsureSalesOrder():
                return await self._ensure_sales_order(message)
            case EnsureBillingDocument():
                return await self._ensure_billing_document(message)
            case EnsureCreditMemoRequest():
                return await self._ensure_credit_memo_request(message)
            case _:
                raise TypeError(
                    f"The ERP connector does not handle {type(message).__name__}; "
                    "send it to the actor of the system that owns it"
                )

    async def _ping(self) -> None:
        response = await self._call("GET", f"{BP}/", params=[("$format", "json")])
        if response.status != 200:
            self._fail(response, "service document")

    # ------------------------------------------------------------------ reads

    async def _get_customers(self, ids: Sequence[str]) -> dict[str, Customer]:
        rows = await self._batched(BP, "A_BusinessPartner", "BusinessPartner", ids, CUSTOMER_EXPAND)
        return {row["BusinessPartner"]: to_customer(row) for row in rows}

    async def _find_customers(self, text: str, limit: int) -> tuple[Customer, ...]:
        expression = f"substringof({literal(text.lower())},tolower(BusinessPartnerFullName))"
        params = [
            ("$filter", expression),
            ("$top", str(max(0, limit))),
            ("$expand", CUSTOMER_EXPAND),
            ("$orderby", "BusinessPartner"),
            ("$format", "json"),
        ]
        rows, _ = await self._walk(f"{BP}/A_BusinessPartner", params)
        return tuple(to_customer(row) for row in rows)

    async def _customers_by_tax_id(self, tax_id: str) -> tuple[Customer, ...]:
        wanted = tax_id.replace(" ", "").replace(".", "").upper()
        params = [
            ("$filter", f"BPTaxNumber eq {literal(wanted)}"),
            ("$select", "BusinessPartner,BPTaxNumber"),
            ("$format", "json"),
        ]
        rows, _ = await self._walk(f"{BP}/A_BusinessPartnerTaxNumber", params)
        ids = sorted({str(row["BusinessPartner"]) for row in rows if row.get("BusinessPartner")})
        found = await self._get_customers(ids) if ids else {}
        return tuple(found[i] for i in ids if i in found)

    async def _list_customers(self, cursor: str | None, limit: int) -> Page[Customer]:
        if cursor is not None and not cursor.isdigit():
            raise Rejected(self.system, f"cursor {cursor!r} was not made by the ERP connector")
        skip = int(cursor or 0)
        params = [
            ("$skip", str(skip)),
            ("$top", str(max(1, limit))),
            ("$orderby", "BusinessPartner"),
            ("$expand", CUSTOMER_EXPAND),
            ("$inlinecount", "allpages"),
            ("$format", "json"),
        ]
        rows, count = await self._walk(f"{BP}/A_BusinessPartner", params)
        end = skip + len(rows)
        more = rows and (count is None or end < count)
        return Page(tuple(to_customer(r) for r in rows), str(end) if more else None)

    async def _customer_by_bp(self, bp: str) -> Customer | None:
        path = f"{BP}/{key_path('A_BusinessPartner', bp)}"
        response = await self._call("GET", path, params=[("$expand", CUSTOMER_EXPAND)])
        if response.status == 404:
            return None
        return to_customer(self._entity(response, f"business partner {bp}"))

    async def _get_orders(self, customer_ids: Sequence[str]) -> dict[str, tuple[Order, ...]]:
        rows = await self._batched(SO, "A_SalesOrder", "SoldToParty", customer_ids, "to_Item")
        grouped: dict[str, list[Order]] = {}
        for row in rows:
            order = to_order(row)
            grouped.setdefault(order.customer_id, []).append(order)
        return {k: tuple(v) for k, v in grouped.items()}

    async def _get_billing_documents(
        self, customer_ids: Sequence[str]
    ) -> dict[str, tuple[Invoice, ...]]:
        rows = await self._batched(BD, "A_BillingDocument", "SoldToParty", customer_ids, None)
        grouped: dict[str, list[Invoice]] = {}
        for row in rows:
            invoice = to_invoice(row)
            grouped.setdefault(invoice.customer_id, []).append(invoice)
        return {k: tuple(v) for k, v in grouped.items()}

    async def _get_billing_document(self, doc_id: str) -> Invoice:
        response = await self._call("GET", f"{BD}/{key_path('A_BillingDocument', doc_id)}")
        return to_invoice(self._entity(response, f"billing document {doc_id}"))

    # ------------------------------------------------------------------ writes

    async def _ensure_customer(self, message: EnsureCustomer) -> Customer:
        external_id = message.external_id
        found, _ = await self._walk(
            f"{BP}/A_BusinessPartner",
            [
                ("$filter", f"BusinessPartnerIDByExtSystem eq {literal(external_id)}"),
                ("$expand", CUSTOMER_EXPAND),
                ("$format", "json"),
            ],
        )
        if found:
            return to_customer(found[0])
        c = message.customer
        name1, name2 = split_name(c.legal_name or c.name)
        body: dict[str, Any] = {
            "BusinessPartnerCategory": "2",
            "BusinessPartnerFullName": c.name,
            "OrganizationBPName1": name1,
            "OrganizationBPName2": name2,
            "BusinessPartnerIDByExtSystem": external_id,
        }
        if c.country:
            body["to_BusinessPartnerAddress"] = {"results": [{"Country": c.country}]}
        if c.tax_id:
            if not c.country:
                raise Rejected(
                    self.system,
                    "a tax number needs the customer's country (its tax category)",
                    details={"country": "required with tax_id"},
                )
            tax = {"BPTaxType": f"{c.country}0", "BPTaxNumber": c.tax_id}
            body["to_BusinessPartnerTax"] = {"results": [tax]}
        area: dict[str, Any] = dict(SALES_AREA)
        if c.payment_terms:
            area["CustomerPaymentTerms"] = c.payment_terms
        if c.currency:
            area["Currency"] = c.currency
        body["to_Customer"] = {"to_CustomerSalesArea": {"results": [area]}}
        response = await self._write("POST", f"{BP}/A_BusinessPartner", json=body)
        if response.status != 201:
            self._fail(response, "create business partner")
        return to_customer(self._d(response))

    async def _update_customer(self, message: UpdateCustomer) -> Customer:
        unknown = sorted(set(message.changes) - set(UPDATABLE))
        if unknown:
            raise Rejected(
                self.system,
                f"the ERP does not keep {', '.join(unknown)}; send those to their owner",
                details={name: "not kept by the ERP" for name in unknown},
            )
        current = await self._customer_entity(message.id)
        planned = patches(current, message.changes)
        for target, (uri, etag, fields) in planned.items():
            if uri is None:
                await self._create_part(message.id, target, current, fields)
            else:
                await self._merge(uri, etag, fields)
        return to_customer(await self._customer_entity(message.id))

    async def _customer_entity(self, bp: str) -> dict[str, Any]:
        path = f"{BP}/{key_path('A_BusinessPartner', bp)}"
        response = await self._call("GET", path, params=[("$expand", CUSTOMER_EXPAND)])
        return self._entity(response, f"business partner {bp}")

    async def _create_part(
        self, bp: str, target: str, entity: dict[str, Any], fields: dict[str, Any]
    ) -> None:
        """Add the entity a change needs when the partner lacks it (tax number, address)."""
        partner = key_path("A_BusinessPartner", bp)
        if target == "tax":
            country = fields.get("Country") or PartnerParts(entity).country
            if not country:
                raise Rejected(
                    self.system,
                    f"business partner {bp} has no country to choose the tax category from",
                    details={"country": "required with tax_id"},
                )
            body = {"BPTaxType": f"{country}0", **fields}
            path = f"{BP}/{partner}/to_BusinessPartnerTax"
        elif target == "address":
            body = dict(fields)
            path = f"{BP}/{partner}/to_BusinessPartnerAddress"
        else:
            raise Rejected(
                self.system,
                f"business partner {bp} is not a customer of sales area 1010/10/00; "
                "extend it to that sales area in the ERP first",
                details={"payment_terms": "no customer sales area"},
            )
        response = await self._write("POST", path, json=body)
        if response.status != 201:
            self._fail(response, f"add {target} to business partner {bp}")

    async def _merge(self, uri: str, etag: str | None, fields: dict[str, Any]) -> None:
        """MERGE with If-Match; on 412 read the entity's current ETag and try once more."""
        for attempt in range(2):
            headers = {"X-HTTP-Method": "MERGE", "If-Match": etag or "*"}
            response = await self._write("POST", uri, json=fields, headers=headers)
            if response.status in (200, 204):
                return
            if response.status == 412 and attempt == 0:
                fresh = await self._call("GET", uri)
                entity = self._entity(fresh, uri)
                etag = fresh.headers.get("ETag") or meta(entity, "etag")
                continue
            self._fail(response, f"MERGE {uri}")

    async def _ensure_sales_order(self, message: EnsureSalesOrder) -> Order:
        if not message.first_delivery:  # SAP has no idempotency key: check before create
            expression = (
                f"PurchaseOrderByCustomer eq {literal(message.purchase_order)} "
                f"and SoldToParty eq {literal(message.customer_id)}"
            )
            found, _ = await self._walk(
                f"{SO}/A_SalesOrder",
                [("$filter", expression), ("$expand", "to_Item"), ("$format", "json")],
            )
            if found:
                return to_order(found[0])
        body = {
            "SalesOrderType": "OR",
            "SalesOrganization": SALES_AREA["SalesOrganization"],
            "DistributionChannel": SALES_AREA["DistributionChannel"],
            "OrganizationDivision": SALES_AREA["Division"],
            "SoldToParty": message.customer_id,
            "PurchaseOrderByCustomer": message.purchase_order,
            "TransactionCurrency": message.currency,
            "to_Item": {
                "results": [
                    {
                        "SalesOrderItem": str(10 * n),
                        "Material": material,
                        "RequestedQuantity": str(quantity),
                    }
                    for n, (material, quantity) in enumerate(message.items, 1)
                ]
            },
        }
        response = await self._write("POST", f"{SO}/A_SalesOrder", json=body)
        if response.status != 201:
            self._fail(response, "create sales order")
        return to_order(self._d(response))

    async def _ensure_billing_document(self, message: EnsureBillingDocument) -> Invoice:
        """Post the billing document of a billing invoice unless one exists for it: always
        checked first (one invoice may be reported by several events)."""
        expression = (
            f"PurchaseOrderByCustomer eq {literal(message.billing_invoice)} "
            f"and SoldToParty eq {literal(message.customer_id)}"
        )
        found, _ = await self._walk(
            f"{BD}/A_BillingDocument", [("$filter", expression), ("$format", "json")]
        )
        if found:
            return to_invoice(found[0])
        body = {
            "SoldToParty": message.customer_id,
            "PurchaseOrderByCustomer": message.billing_invoice,
            "TotalNetAmount": str(message.net_amount),
            "TaxAmount": str(message.tax_amount),
            "TransactionCurrency": message.currency.upper(),
            "AccountingPostingStatus": "C",
        }
        response = await self._write("POST", f"{BD}/A_BillingDocument", json=body)
        if response.status != 201:
            self._fail(response, "post billing document")
        return to_invoice(self._d(response))

    async def _ensure_credit_memo_request(self, message: EnsureCreditMemoRequest) -> str:
        if not message.first_delivery:  # no idempotency key at SAP: check before create
            expression = (
                f"PurchaseOrderByCustomer eq {literal(message.purchase_order)} "
                f"and SoldToParty eq {literal(message.customer_id)}"
            )
            found, _ = await self._walk(
                f"{CMR}/A_CreditMemoRequest",
                [
                    ("$filter", expression),
                    ("$select", "CreditMemoRequest"),
                    ("$format", "json"),
                ],
            )
            if found:
                return credit_memo_request_id(found[0])
        body: dict[str, Any] = {
            "CreditMemoRequestType": "CR",
            "SalesOrganization": SALES_AREA["SalesOrganization"],
            "DistributionChannel": SALES_AREA["DistributionChannel"],
            "OrganizationDivision": SALES_AREA["Division"],
            "SoldToParty": message.customer_id,
            "PurchaseOrderByCustomer": message.purchase_order,
            "SDDocumentReason": message.reason,
            # Edm.Decimal travels as a string, never as a JSON number
            "TotalNetAmount": str(message.amount),
            "TransactionCurrency": message.currency,
        }
        if message.billing_document:
            body["ReferenceSDDocument"] = message.billing_document
        response = await self._write("POST", f"{CMR}/A_CreditMemoRequest", json=body)
        if response.status != 201:
            self._fail(response, "create credit memo request")
        return credit_memo_request_id(self._d(response))
