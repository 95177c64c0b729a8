"""Events the ERP sandbox pushes: SAP Event Mesh style CloudEvents, keys only.

Delivered by the shared webhook sender with ``Authorization: Bearer <webhook secret>``.
A business partner's ``Changed`` event is raised when the partner or any of its parts
(address, tax number, customer, sales area) is created or changed through the API.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from sandbox.app import SandboxState
from sandbox.erp.model import EntitySet
from sandbox.webhooks import random_uuid

__all__ = ["BILLING_DOCUMENT_CREATED", "BUSINESS_PARTNER_CHANGED", "publish_change"]

BILLING_DOCUMENT_CREATED = "sap.s4.beh.billingdocument.v1.BillingDocument.Created.v1"
BUSINESS_PARTNER_CHANGED = "sap.s4.beh.businesspartner.v1.BusinessPartner.Changed.v1"
EVENT_SOURCE = "/default/sap.s4.beh/S4HCLNT100"

#: entity sets whose changes are a change of the business partner they belong to
_BP_FAMILY = {
    "A_BusinessPartner": "BusinessPartner",
    "A_BusinessPartnerAddress": "BusinessPartner",
    "A_BusinessPartnerTaxNumber": "BusinessPartner",
    "A_Customer": "Customer",
    "A_CustomerSalesArea": "Customer",
}


def publish_change(
    state: SandboxState, es: EntitySet, doc: dict[str, Any], *, created: bool
) -> None:
    if es.name == "A_BillingDocument":
        if created:
            _publish(state, BILLING_DOCUMENT_CREATED, {"BillingDocument": doc["BillingDocument"]})
        return
    field_name = _BP_FAMILY.get(es.name)
    if field_name is not None:
        _publish(state, BUSINESS_PARTNER_CHANGED, {"BusinessPartner": doc[field_name]})


def _publish(state: SandboxState, event_type: str, data: dict[str, str]) -> None:
    """Queue one CloudEvent (keys only: the consumer reads the record back)."""
    if not state.webhooks.enabled:
        return
    event = {
        "specversion": "1.0",
        "type": event_type,
        "source": EVENT_SOURCE,
        "id": random_uuid(),
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": data,
    }
    state.webhooks.publish(orjson.dumps(event))
