"""The demo world: the same companies across the four systems, linked and slightly drifted.

``generate(customers, seed)`` is deterministic: the same arguments give the same world,
in every sandbox process. Each vendor module renders its own part of it in its own wire
shape; ``DemoData.manifest()`` lists the drift planted on purpose, so reconciliation can
be checked against the truth.

Links (the vendors' own cross-reference keys):
- ERP BusinessPartner ``bp`` (``"1000042"``) is the system of record;
- CRM Account carries ``ERP_Customer_Id__c = bp``;
- billing customer carries ``metadata[erp_bp] = bp`` and ``metadata[crm_account_id]``;
- support organization carries ``external_id = bp``;
- an ERP sales order's ``PurchaseOrderByCustomer`` is the CRM opportunity id it came from;
- an ERP billing document's ``PurchaseOrderByCustomer`` is the billing invoice id it posts.
"""

from sandbox.demo.records import (
    EPOCH,
    PRODUCTS,
    DemoCompany,
    DemoData,
    DemoInvoice,
    DemoOpportunity,
    DemoOrder,
    DemoProduct,
    DemoSubscription,
    DemoTicket,
    Drift,
    OrphanBillingCustomer,
    sf_id,
)
from sandbox.demo.world import generate

__all__ = [
    "EPOCH",
    "PRODUCTS",
    "DemoCompany",
    "DemoData",
    "DemoInvoice",
    "DemoOpportunity",
    "DemoOrder",
    "DemoProduct",
    "DemoSubscription",
    "DemoTicket",
    "Drift",
    "OrphanBillingCustomer",
    "generate",
    "sf_id",
]
