"""Each vendor's payload mapped to the canonical CloudEvents envelope."""

from __future__ import annotations

from typing import Any

import pytest

from canonical import System
from gateway.webhooks import EventInvalid, map_event
from tests.webhooks.samples import (
    salesforce_opportunity_updated,
    sap_billing_document_created,
    stripe_invoice_finalized,
    stripe_subscription_created,
    zendesk_ticket_created,
)

ENVELOPE_KEYS = {
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "subject",
    "datacontenttype",
    "data",
}


def test_stripe_event() -> None:
    payload = stripe_invoice_finalized()
    event = map_event(System.BILLING, payload)
    assert event.envelope() == {
        "specversion": "1.0",
        "id": "evt_1PqInvoiceFinal01",
        "source": "/billing/stripe",
        "type": "billing.invoice.finalized",
        "time": "2025-11-28T22:46:40.000Z",
        "subject": "in_1PqInvoice0001",
        "datacontenttype": "application/json",
        "data": payload,
    }
    assert not event.echo
    subscription = map_event(System.BILLING, stripe_subscription_created())
    assert subscription.type == "billing.subscription.created"
    assert subscription.subject == "sub_1PqSub"


def test_zendesk_event() -> None:
    payload = zendesk_ticket_created(35436)
    event = map_event(System.SUPPORT, payload)
    assert set(event.envelope()) == ENVELOPE_KEYS
    assert event.id == payload["id"]
    assert event.type == "support.ticket.created"
    assert event.subject == "35436"
    assert event.source == "/support/zendesk/9000001"
    assert event.time == payload["time"]
    assert event.data == payload


def test_salesforce_change_event() -> None:
    payload = salesforce_opportunity_updated(client="portal")
    event = map_event(System.CRM, payload)
    assert event.type == "crm.opportunity.updated"
    assert event.subject == "006SB00000000042AAA"
    assert event.id == "0a1b2c3d4e5f60718293a4b5c6d7e8f9:006SB00000000042AAA"
    assert event.source == "/crm/salesforce/data/OpportunityChangeEvent"
    assert event.time == "2026-11-28T23:00:00.000Z"
    assert not event.echo


def test_salesforce_echo_of_our_own_write() -> None:
    assert map_event(System.CRM, salesforce_opportunity_updated(client="crosswalk")).echo
    assert not map_event(System.CRM, salesforce_opportunity_updated(client="crosswalk2")).echo
    assert not map_event(System.CRM, salesforce_opportunity_updated(client=None)).echo


def test_salesforce_without_transaction_key_uses_the_replay_id() -> None:
    payload = salesforce_opportunity_updated()
    del payload["data"]["payload"]["ChangeEventHeader"]["transactionKey"]
    assert map_event(System.CRM, payload).id == "replay:42"


def test_sap_cloud_event() -> None:
    payload = sap_billing_document_created()
    event = map_event(System.ERP, payload)
    assert event.envelope() == {
        "specversion": "1.0",
        "id": payload["id"],
        "source": "/erp/default/sap.s4.beh/S4HCLNT100",
        "type": "erp.billingdocument.created",
        "time": "2026-11-28T23:00:00.000Z",
        "subject": "90000042",
        "datacontenttype": "application/json",
        "data": payload,
    }
    payload["type"] = "sap.s4.beh.businesspartner.v1.BusinessPartner.Changed.v1"
    payload["data"] = {"BusinessPartner": "1000005"}
    changed = map_event(System.ERP, payload)
    assert (changed.type, changed.subject) == ("erp.businesspartner.changed", "1000005")


def _without(payload: dict[str, Any], *path: str) -> dict[str, Any]:
    node = payload
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return payload


@pytest.mark.parametrize(
    ("system", "payload", "message"),
    [
        (System.BILLING, _without(stripe_invoice_finalized(), "id"), "'id' is missing"),
        (System.BILLING, {**stripe_invoice_finalized(), "id": "x1"}, "does not start with"),
        (
            System.BILLING,
            _without(stripe_invoice_finalized(), "data", "object"),
            "'object' is missing",
        ),
        (System.SUPPORT, {**zendesk_ticket_created(), "type": "ticket"}, "zen:event-type:"),
        (System.SUPPORT, _without(zendesk_ticket_created(), "id"), "'id' is missing"),
        (
            System.CRM,
            _without(salesforce_opportunity_updated(), "data", "payload", "ChangeEventHeader"),
            "ChangeEventHeader",
        ),
        (System.ERP, {**sap_billing_document_created(), "type": "x.y"}, "sap.s4.beh"),
        (System.ERP, {**sap_billing_document_created(), "data": {}}, "data"),
        (System.ERP, [1, 2], "'type' is missing"),
        (System.CRM, "text", "'data' is missing"),
    ],
)
def test_payloads_that_are_not_events_are_refused(
    system: System, payload: Any, message: str
) -> None:
    with pytest.raises(EventInvalid, match=message):
        map_event(system, payload)
