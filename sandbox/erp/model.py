"""The ERP sandbox's entity data model: four OData V2 services and their `$metadata`.

The shapes follow SAP's published APIs (``API_BUSINESS_PARTNER``, ``API_SALES_ORDER_SRV``,
``API_BILLING_DOCUMENT_SRV``, ``API_CREDIT_MEMO_REQUEST_SRV``), cut down to the properties
Crosswalk and a generic client need. Every record is stored under its entity set's name,
with values kept as they travel on the wire except dates, which are kept as epoch
milliseconds:

- ``Edm.String``: str; ``Edm.Decimal``: str (a decimal string); ``Edm.Boolean``: bool;
- ``Edm.DateTime`` / ``Edm.DateTimeOffset``: int milliseconds since the epoch, UTC.

Payment terms: SAP keeps them per sales area, so a business partner's ``to_Customer``
(``A_Customer``) leads to ``to_CustomerSalesArea`` (``A_CustomerSalesArea``) whose
``CustomerPaymentTerms`` and ``Currency`` are the customer's terms and currency.

Each service's ``$metadata`` document is written from this model in ``sandbox.erp.metadata``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

__all__ = [
    "ENTITY_SETS",
    "SERVICES",
    "EntitySet",
    "Nav",
    "Prop",
    "Service",
    "service_of",
]


@dataclass(frozen=True, slots=True)
class Prop:
    name: str
    type: str = "Edm.String"
    max_length: int | None = None
    label: str = ""
    nullable: bool = True
    precision: int | None = None
    scale: int | None = None
    #: False for properties the server sets (numbers it assigns, totals, timestamps)
    creatable: bool = True
    updatable: bool = True


@dataclass(frozen=True, slots=True)
class Nav:
    """A navigation property: records of ``target`` whose ``link`` values match ours."""

    name: str
    target: str  # entity set name
    many: bool
    link: tuple[tuple[str, str], ...]  # (our property, target property)


@dataclass(frozen=True)
class EntitySet:
    name: str  # "A_BusinessPartner"
    service: str  # "API_BUSINESS_PARTNER"
    keys: tuple[str, ...]
    props: tuple[Prop, ...]
    navs: tuple[Nav, ...] = ()
    label: str = ""
    creatable: bool = True
    updatable: bool = True
    deletable: bool = False
    #: a number range the server draws the (single) key from when a create leaves it out
    number_range: tuple[str, int] | None = None

    @property
    def type_name(self) -> str:
        return f"{self.name}Type"

    @property
    def qualified_type(self) -> str:
        return f"{self.service}.{self.type_name}"

    @cached_property
    def prop_map(self) -> dict[str, Prop]:
        return {p.name: p for p in self.props}

    @cached_property
    def wire_props(self) -> tuple[tuple[str, int], ...]:
        """Each property with how its value goes on the wire: 0 as it is, 1
        ``Edm.DateTime``, 2 ``Edm.DateTimeOffset`` (what ``to_wire`` decides per value,
        decided once per set)."""
        dates = {"Edm.DateTime": 1, "Edm.DateTimeOffset": 2}
        return tuple((p.name, dates.get(p.type, 0)) for p in self.props)

    @cached_property
    def nav_map(self) -> dict[str, Nav]:
        return {n.name: n for n in self.navs}

    def key_of(self, doc: Mapping[str, object]) -> tuple[str, ...]:
        return tuple(str(doc[k]) for k in self.keys)

    def doc_id(self, key: tuple[str, ...]) -> str:
        """The store id of the record with ``key`` (keys joined by a separator SAP keys lack)."""
        return "\x1f".join(key)

    def key_segment(self, key: tuple[str, ...]) -> str:
        """``('1000042')`` or ``(Customer='1',SalesOrganization='1010')``, as in entity URIs."""
        quoted = [_literal(v) for v in key]
        if len(self.keys) == 1:
            return f"({quoted[0]})"
        return "(" + ",".join(f"{k}={v}" for k, v in zip(self.keys, quoted, strict=True)) + ")"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Service:
    name: str
    sets: tuple[EntitySet, ...] = field(default_factory=tuple)
    label: str = ""

    @cached_property
    def set_map(self) -> dict[str, EntitySet]:
        return {s.name: s for s in self.sets}


def _s(name: str, max_length: int, label: str = "", **kw: object) -> Prop:
    return Prop(name, "Edm.String", max_length, label or name, **kw)  # type: ignore[arg-type]


def _dec(name: str, label: str = "", precision: int = 16, scale: int = 3, **kw: object) -> Prop:
    return Prop(
        name,
        "Edm.Decimal",
        None,
        label or name,
        precision=precision,
        scale=scale,
        **kw,  # type: ignore[arg-type]
    )


def _date(name: str, label: str = "", **kw: object) -> Prop:
    return Prop(name, "Edm.DateTime", None, label or name, precision=0, **kw)  # type: ignore[arg-type]


def _stamp(name: str, label: str = "") -> Prop:
    return Prop(
        name,
        "Edm.DateTimeOffset",
        None,
        label or name,
        precision=7,
        creatable=False,
        updatable=False,
    )


def _bool(name: str, label: str = "") -> Prop:
    return Prop(name, "Edm.Boolean", None, label or name)


_BP = "API_BUSINESS_PARTNER"
_SO = "API_SALES_ORDER_SRV"
_BD = "API_BILLING_DOCUMENT_SRV"
_CMR = "API_CREDIT_MEMO_REQUEST_SRV"

BUSINESS_PARTNER = EntitySet(
    "A_BusinessPartner",
    _BP,
    keys=("BusinessPartner",),
    label="General Business Partner Data",
    deletable=False,
    number_range=("business_partner", 1000000),
    props=(
        _s("BusinessPartner", 10, "Business Partner", nullable=False, updatable=False),
        _s("Customer", 10, "Customer", updatable=False),
        _s("BusinessPartnerCategory", 1, "BP Category"),
        _s("BusinessPartnerGrouping", 4, "Grouping"),
        _s("BusinessPartnerFullName", 81, "Name"),
        _s("OrganizationBPName1", 40, "Name 1"),
        _s("OrganizationBPName2", 40, "Name 2"),
        _s("SearchTerm1", 20, "Search Term 1"),
        _s("SearchTerm2", 20, "Search Term 2"),
        _s("BusinessPartnerIDByExtSystem", 20, "External BP Number"),
        _s("Language", 2, "Language"),
        _bool("BusinessPartnerIsBlocked", "Central Block"),
        _date("CreationDate", "Created On", creatable=False, updatable=False),
        _date("LastChangeDate", "Changed On", creatable=False, updatable=False),
    ),
    navs=(
        Nav(
            "to_BusinessPartnerAddress",
            "A_BusinessPartnerAddress",
            True,
            (("BusinessPartner", "BusinessPartner"),),
        ),
        Nav(
            "to_BusinessPartnerTax",
            "A_BusinessPartnerTaxNumber",
            True,
            (("BusinessPartner", "BusinessPartner"),),
        ),
        Nav("to_Customer", "A_Customer", False, (("BusinessPartner", "Customer"),)),
    ),
)

BUSINESS_PARTNER_ADDRESS = EntitySet(
    "A_BusinessPartnerAddress",
    _BP,
    keys=("BusinessPartner", "AddressID"),
    label="BP Address",
    deletable=True,
    props=(
        _s("BusinessPartner", 10, "Business Partner", nullable=False, updatable=False),
        _s("AddressID", 10, "Address Number", nullable=False, updatable=False),
        _s("Country", 3, "Country/Region Key"),
        _s("Region", 3, "Region"),
        _s("CityName", 40, "City"),
        _s("PostalCode", 10, "Postal Code"),
        _s("StreetName", 60, "Street"),
        _s("HouseNumber", 10, "House Number"),
        _s("Language", 2, "Language Key"),
    ),
)

BUSINESS_PARTNER_TAX = EntitySet(
    "A_BusinessPartnerTaxNumber",
    _BP,
    keys=("BusinessPartner", "BPTaxType"),
    label="BP Tax Number",
    deletable=True,
    props=(
        _s("BusinessPartner", 10, "Business Partner", nullable=False, updatable=False),
        _s("BPTaxType", 4, "Tax Number Category", nullable=False, updatable=False),
        _s("BPTaxNumber", 20, "Tax Number"),
        _s("BPTaxLongNumber", 60, "Tax Number"),
    ),
)

CUSTOMER = EntitySet(
    "A_Customer",
    _BP,
    keys=("Customer",),
    label="Customer",
    props=(
        _s("Customer", 10, "Customer", nullable=False, updatable=False),
        _s("CustomerName", 80, "Name of Customer"),
        _s("CustomerFullName", 220, "Customer Full Name"),
        _s("CustomerAccountGroup", 4, "Account Group"),
        _s("OrderIsBlockedForCustomer", 2, "Order Block for Customer"),
        _s("DeliveryIsBlocked", 2, "Delivery Block for Customer"),
        _s("BillingIsBlockedForCustomer", 2, "Billing Block for Customer"),
        _bool("PostingIsBlocked", "Posting Block for Company Code"),
        _bool("DeletionIndicator", "Central Deletion Flag"),
        _date("CreationDate", "Created On", creatable=False, updatable=False),
    ),
    navs=(
        Nav(
            "to_CustomerSalesArea",
            "A_CustomerSalesArea",
            True,
            (("Customer", "Customer"),),
        ),
    ),
)

CUSTOMER_SALES_AREA = EntitySet(
    "A_CustomerSalesArea",
    _BP,
    keys=("Customer", "SalesOrganization", "DistributionChannel", "Division"),
    label="Customer Sales Area",
    props=(
        _s("Customer", 10, "Customer", nullable=False, updatable=False),
        _s("SalesOrganization", 4, "Sales Organization", nullable=False, updatable=False),
        _s("DistributionChannel", 2, "Distribution Channel", nullable=False, updatable=False),
        _s("Division", 2, "Division", nullable=False, updatable=False),
        _s("Currency", 5, "Currency"),
        _s("CustomerPaymentTerms", 4, "Terms of Payment Key"),
        _s("IncotermsClassification", 3, "Incoterms"),
        _s("SalesDistrict", 6, "Sales District"),
    ),
)

SALES_ORDER = EntitySet(
    "A_SalesOrder",
    _SO,
    keys=("SalesOrder",),
    label="Sales Order Header",
    deletable=True,
    number_range=("sales_order", 5000000),
    props=(
        _s("SalesOrder", 10, "Sales Order", nullable=False, updatable=False),
        _s("SalesOrderType", 4, "Sales Document Type"),
        _s("SalesOrganization", 4, "Sales Organization"),
        _s("DistributionChannel", 2, "Distribution Channel"),
        _s("OrganizationDivision", 2, "Division"),
        _s("SoldToParty", 10, "Sold-to Party"),
        _s("PurchaseOrderByCustomer", 35, "Customer Reference"),
        _s("CustomerPaymentTerms", 4, "Terms of Payment Key"),
        _date("CreationDate", "Created On", creatable=False, updatable=False),
        _stamp("LastChangeDateTime", "Last Changed On"),
        _dec("TotalNetAmount", "Net Value", creatable=False, updatable=False),
        _s("TransactionCurrency", 5, "Document Currency"),
        _s("OverallSDProcessStatus", 1, "Overall Status", creatable=False),
    ),
    navs=(Nav("to_Item", "A_SalesOrderItem", True, (("SalesOrder", "SalesOrder"),)),),
)

SALES_ORDER_ITEM = EntitySet(
    "A_SalesOrderItem",
    _SO,
    keys=("SalesOrder", "SalesOrderItem"),
    label="Sales Order Item",
    deletable=True,
    props=(
        _s("SalesOrder", 10, "Sales Order", nullable=False, updatable=False),
        _s("SalesOrderItem", 6, "Sales Order Item", nullable=False, updatable=False),
        _s("SalesOrderItemCategory", 4, "Item Category"),
        _s("SalesOrderItemText", 40, "Item Description"),
        _s("Material", 40, "Material"),
        _dec("RequestedQuantity", "Requested Quantity", precision=15, scale=3),
        _s("RequestedQuantityUnit", 3, "Unit"),
        _dec("NetAmount", "Net Value", creatable=False, updatable=False),
        _s("TransactionCurrency", 5, "Document Currency"),
    ),
)

BILLING_DOCUMENT = EntitySet(
    "A_BillingDocument",
    _BD,
    keys=("BillingDocument",),
    label="Billing Document Header",
    # creating and changing billing documents is a sandbox extension: SAP's API only reads
    # them (documents come from billing due lists), but the gateway's "post invoice" step
    # needs a way in, so the sandbox accepts POST and MERGE here.
    creatable=True,
    updatable=True,
    deletable=False,
    number_range=("billing_document", 90000000),
    props=(
        _s("BillingDocument", 10, "Billing Document", nullable=False, updatable=False),
        _s("BillingDocumentType", 4, "Billing Type"),
        _s("SDDocumentCategory", 4, "Document Category"),
        _s("SalesOrganization", 4, "Sales Organization"),
        _s("DistributionChannel", 2, "Distribution Channel"),
        _s("Division", 2, "Division"),
        _s("CompanyCode", 4, "Company Code"),
        _date("BillingDocumentDate", "Billing Date"),
        _bool("BillingDocumentIsCancelled", "Billing Document Is Cancelled"),
        _date("CreationDate", "Created On", creatable=False, updatable=False),
        _stamp("LastChangeDateTime", "Last Changed On"),
        _s("SoldToParty", 10, "Sold-to Party"),
        _s("PayerParty", 10, "Payer"),
        _s("PurchaseOrderByCustomer", 35, "Customer Reference"),
        _s("CustomerPaymentTerms", 4, "Terms of Payment Key"),
        _dec("TotalNetAmount", "Net Value"),
        _dec("TaxAmount", "Tax Amount"),
        _dec("TotalGrossAmount", "Gross Amount", creatable=False, updatable=False),
        _s("TransactionCurrency", 5, "Document Currency"),
        _s("AccountingPostingStatus", 1, "Posting Status"),
    ),
)

CREDIT_MEMO_REQUEST = EntitySet(
    "A_CreditMemoRequest",
    _CMR,
    keys=("CreditMemoRequest",),
    label="Credit Memo Request Header",
    deletable=False,
    number_range=("credit_memo_request", 60000000),
    props=(
        _s("CreditMemoRequest", 10, "Credit Memo Request", nullable=False, updatable=False),
        _s("CreditMemoRequestType", 4, "Sales Document Type"),
        _s("SalesOrganization", 4, "Sales Organization"),
        _s("DistributionChannel", 2, "Distribution Channel"),
        _s("OrganizationDivision", 2, "Division"),
        _s("SoldToParty", 10, "Sold-to Party"),
        _s("PurchaseOrderByCustomer", 35, "Customer Reference"),
        _s("SDDocumentReason", 3, "Order Reason"),
        _date("CreditMemoRequestDate", "Document Date"),
        _date("CreationDate", "Created On", creatable=False, updatable=False),
        _stamp("LastChangeDateTime", "Last Changed On"),
        # creatable here, a sandbox extension: SAP prices a request from its items
        # (to_Item); the sandbox takes the header's net value as given
        _dec("TotalNetAmount", "Net Value"),
        _s("TransactionCurrency", 5, "Document Currency"),
        _s("ReferenceSDDocument", 10, "Reference Document"),
        _s("OverallSDProcessStatus", 1, "Overall Status", creatable=False),
    ),
)

SERVICES: dict[str, Service] = {
    _BP: Service(
        _BP,
        (
            BUSINESS_PARTNER,
            BUSINESS_PARTNER_ADDRESS,
            BUSINESS_PARTNER_TAX,
            CUSTOMER,
            CUSTOMER_SALES_AREA,
        ),
        "Business Partner (A2X)",
    ),
    _SO: Service(_SO, (SALES_ORDER, SALES_ORDER_ITEM), "Sales Order (A2X)"),
    _BD: Service(_BD, (BILLING_DOCUMENT,), "Billing Document (A2X)"),
    _CMR: Service(_CMR, (CREDIT_MEMO_REQUEST,), "Credit Memo Request (A2X)"),
}

ENTITY_SETS: dict[str, EntitySet] = {s.name: s for svc in SERVICES.values() for s in svc.sets}


def service_of(entity_set: EntitySet) -> Service:
    return SERVICES[entity_set.service]
