"""Vendor events mapped to one canonical envelope (CloudEvents 1.0).

Every system's payload becomes a ``CanonicalEvent``: ``id`` is the vendor's own event id
(so a redelivery maps to the same id and the inbox drops it), ``type`` is
``<system>.<record kind>.<change>`` (``billing.invoice.finalized``,
``crm.opportunity.updated``, ``support.ticket.created``, ``erp.billingdocument.created``),
``subject`` is the record's id in that system, ``data`` is the vendor payload as
received, so a later process reads whatever the vendor sent.

Salesforce change events written by our own client (``changeOrigin`` ending in
``client=crosswalk``) are marked ``echo``: acting on them would loop a change back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from canonical import System
from gateway.webhooks.errors import EventInvalid

__all__ = ["OWN_CLIENT", "CanonicalEvent", "map_event"]

#: the client name our CRM connector sends in ``Sforce-Call-Options`` (actors.connector)
OWN_CLIENT = "crosswalk"
SPECVERSION = "1.0"


@dataclass(frozen=True, slots=True)
class CanonicalEvent:
    """One received event in CloudEvents 1.0 terms, plus whether it echoes our own write."""

    id: str
    source: str
    type: str
    time: str
    subject: str
    data: Any
    system: System
    echo: bool = False
    specversion: str = SPECVERSION
    datacontenttype: str = "application/json"

    def envelope(self) -> dict[str, Any]:
        """The CloudEvents JSON form (structured mode)."""
        return {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
            "subject": self.subject,
            "datacontenttype": self.datacontenttype,
            "data": self.data,
        }


def _need(mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, Mapping) or mapping.get(key) in (None, ""):
        raise EventInvalid(f"{where}: field {key!r} is missing")
    return mapping[key]


def _text(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise EventInvalid(f"{where}: expected a string or integer, got {type(value).__name__}")
    return str(value)


def _iso_from_epoch(seconds: float, where: str) -> str:
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise EventInvalid(f"{where}: {seconds!r} is not a time this side of year 9999") from None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _stripe(payload: Any) -> CanonicalEvent:
    event_id = _text(_need(payload, "id", "Stripe event"), "Stripe event id")
    if not event_id.startswith("evt_"):
        raise EventInvalid(f"Stripe event id {event_id[:40]!r} does not start with 'evt_'")
    kind = _text(_need(payload, "type", "Stripe event"), "Stripe event type")
    obj = _need(_need(payload, "data", "Stripe event"), "object", "Stripe event data")
    created = _need(payload, "created", "Stripe event")
    if isinstance(created, bool) or not isinstance(created, int | float):
        raise EventInvalid("Stripe event: 'created' must be a unix time")
    # customer.subscription.* is the subscription's own life cycle
    canonical = (
        kind.removeprefix("customer.") if kind.startswith("customer.subscription.") else kind
    )
    return CanonicalEvent(
        id=event_id,
        source="/billing/stripe",
        type=f"billing.{canonical}",
        time=_iso_from_epoch(created, "Stripe event created"),
        subject=_text(_need(obj, "id", "Stripe event data.object"), "Stripe object id"),
        data=payload,
        system=System.BILLING,
    )


def _zendesk(payload: Any) -> CanonicalEvent:
    kind = _text(_need(payload, "type", "Zendesk event"), "Zendesk event type")
    prefix = "zen:event-type:"
    if not kind.startswith(prefix):
        raise EventInvalid(f"Zendesk event type {kind[:60]!r} does not start with {prefix!r}")
    detail = _need(payload, "detail", "Zendesk event")
    subject = payload.get("subject")
    record_id = detail.get("id") if isinstance(detail, Mapping) else None
    if record_id in (None, "") and isinstance(subject, str):
        record_id = subject.rpartition(":")[2]  # "zen:ticket:<id>"
    if record_id in (None, ""):
        raise EventInvalid("Zendesk event: neither detail.id nor subject names the record")
    account = payload.get("account_id")
    return CanonicalEvent(
        id=_text(_need(payload, "id", "Zendesk event"), "Zendesk event id"),
        source=f"/support/zendesk/{account}" if account is not None else "/support/zendesk",
        type=f"support.{kind.removeprefix(prefix)}",
        time=_text(_need(payload, "time", "Zendesk event"), "Zendesk event time"),
        subject=_text(record_id, "Zendesk record id"),
        data=payload,
        system=System.SUPPORT,
    )


_CDC_CHANGES = {
    "CREATE": "created",
    "UPDATE": "updated",
    "DELETE": "deleted",
    "UNDELETE": "undeleted",
}


def _is_own_origin(origin: Any, own_client: str) -> bool:
    """``com/salesforce/api/rest/60.0;client=crosswalk`` names our client."""
    if not isinstance(origin, str):
        return False
    for part in origin.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.strip() == "client" and value.strip() == own_client:
            return True
    return False


def _salesforce(payload: Any, own_client: str) -> CanonicalEvent:
    data = _need(payload, "data", "Salesforce change event")
    body = _need(data, "payload", "Salesforce change event data")
    header = _need(body, "ChangeEventHeader", "Salesforce change event payload")
    entity = _text(_need(header, "entityName", "ChangeEventHeader"), "entityName")
    records = _need(header, "recordIds", "ChangeEventHeader")
    if not isinstance(records, list) or not records:
        raise EventInvalid("ChangeEventHeader: recordIds must be a non-empty list")
    record_ids = [_text(r, "ChangeEventHeader.recordIds") for r in records]
    change = _text(_need(header, "changeType", "ChangeEventHeader"), "changeType")
    # GAP_* and OVERFLOW events say "something changed, read it back": keep the vendor word
    verb = _CDC_CHANGES.get(change, change.lower())
    key = header.get("transactionKey")
    if isinstance(key, str) and key:
        # the transaction key is random per commit; the replay id is only a position on
        # the channel (it restarts when the org's event store does), so it comes second
        event_id = f"{key}:{'+'.join(sorted(record_ids))}"
    else:
        event = _need(data, "event", "Salesforce change event data")
        event_id = "replay:" + _text(_need(event, "replayId", "event"), "replayId")
    stamp = header.get("commitTimestamp")
    if isinstance(stamp, bool) or not isinstance(stamp, int | float):
        raise EventInvalid("ChangeEventHeader: commitTimestamp must be epoch milliseconds")
    channel = payload.get("channel") or f"/data/{entity}ChangeEvent"
    return CanonicalEvent(
        id=event_id,
        source=f"/crm/salesforce{channel}",
        type=f"crm.{entity.lower()}.{verb}",
        time=_iso_from_epoch(stamp / 1000, "ChangeEventHeader.commitTimestamp"),
        subject=record_ids[0],
        data=payload,
        system=System.CRM,
        echo=_is_own_origin(header.get("changeOrigin"), own_client),
    )


def _sap(payload: Any) -> CanonicalEvent:
    kind = _text(_need(payload, "type", "SAP CloudEvent"), "SAP CloudEvent type")
    # sap.s4.beh.<object>.v1.<Entity>.<Change>.v1
    parts = kind.split(".")
    if len(parts) != 8 or parts[:3] != ["sap", "s4", "beh"]:
        raise EventInvalid(
            f"SAP CloudEvent type {kind[:80]!r} is not sap.s4.beh.<object>.v1.<Entity>.<Change>.v1"
        )
    data = _need(payload, "data", "SAP CloudEvent")
    if not isinstance(data, Mapping):
        raise EventInvalid("SAP CloudEvent: data must be an object of keys")
    key = data.get(parts[5])
    if key in (None, "") and len(data) == 1:
        key = next(iter(data.values()))
    if key in (None, ""):
        raise EventInvalid(f"SAP CloudEvent: data has no {parts[5]!r} key")
    source = _text(_need(payload, "source", "SAP CloudEvent"), "SAP CloudEvent source")
    return CanonicalEvent(
        id=_text(_need(payload, "id", "SAP CloudEvent"), "SAP CloudEvent id"),
        source=f"/erp{source}" if source.startswith("/") else f"/erp/{source}",
        type=f"erp.{parts[3].lower()}.{parts[6].lower()}",
        time=_text(_need(payload, "time", "SAP CloudEvent"), "SAP CloudEvent time"),
        subject=_text(key, f"SAP CloudEvent data.{parts[5]}"),
        data=payload,
        system=System.ERP,
    )


_MAPPERS: dict[System, Callable[[Any], CanonicalEvent]] = {
    System.BILLING: _stripe,
    System.SUPPORT: _zendesk,
    System.ERP: _sap,
}


def map_event(system: System, payload: Any, *, own_client: str = OWN_CLIENT) -> CanonicalEvent:
    """The canonical event for a vendor ``payload`` (parsed JSON) received from ``system``.

    Raises ``EventInvalid`` naming the missing or malformed field."""
    if system is System.CRM:
        return _salesforce(payload, own_client)
    return _MAPPERS[system](payload)
