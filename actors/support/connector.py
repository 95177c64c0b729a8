"""The support connector: Zendesk Support API v2 <-> the canonical model, per message.

Customers are Zendesk organizations (``external_id`` = ERP BusinessPartner), entitlements
live in ``organization_fields``, cases are tickets. Reads batch where Zendesk allows it
(``organizations/show_many`` takes 100 ids); cases are read per organization
(``organizations/{id}/tickets``, cursor-paged) with a bounded number of calls in flight.
Writes use Zendesk's own duplicate guards: ``create_or_update`` matched by
``external_id`` for organizations, ``Idempotency-Key`` for new tickets.

The rest of the support package: ``mapping`` (organizations and tickets <-> canonical
records), ``paging`` (calls, batched and paged reads, change feeds), ``errors``
(Zendesk's error table).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actors.errors import Conflict, Rejected
from actors.messages import (
    CreateCase,
    EnsureCustomer,
    FindCustomerByXRef,
    FindCustomers,
    GetCases,
    GetChanges,
    GetCustomers,
    GetEntitlements,
    ListCustomers,
    Message,
    Page,
    SetEntitlement,
    UpdateCase,
    UpdateCustomer,
)
from actors.support.mapping import CUSTOMER_FIELDS, to_case, to_customer, to_entitlement
from actors.support.paging import BATCH, ZendeskPaging
from canonical.models import Case, Customer, Entitlement, System

__all__ = ["SupportConnector"]


class SupportConnector(ZendeskPaging):
    """Connector for the support system (Zendesk Support API v2)."""

    system = System.SUPPORT

    # ------------------------------------------------------------------ dispatch

    async def handle(self, message: Message) -> object:
        match message:
            case GetCustomers(ids=ids):
                orgs = await self._show_many(ids)
                return {key: to_customer(org) for key, org in orgs.items()}
            case GetEntitlements(organization_ids=ids):
                orgs = await self._show_many(ids)
                return {key: to_entitlement(org) for key, org in orgs.items()}
            case ListCustomers(cursor=cursor, limit=limit):
                return await self._list_customers(cursor, limit)
            case FindCustomers(text=text, limit=limit):
                return await self._find_customers(text, limit)
            case FindCustomerByXRef(erp_bp=erp_bp):
                found = await self._search({"external_id": erp_bp})
                return to_customer(found[0]) if found else None
            case GetCases(organization_ids=ids):
                return await self._cases(ids)
            case GetChanges(feed=feed, cursor=cursor):
                return await self._changes(feed, cursor)
            case EnsureCustomer():
                return await self._ensure_customer(message)
            case UpdateCustomer():
                return await self._update_customer(message)
            case SetEntitlement():
                return await self._set_entitlement(message)
            case CreateCase():
                return await self._create_case(message)
            case UpdateCase(id=case_id, fields=fields):
                answer = await self._call(
                    "PUT", f"/tickets/{self._id(case_id)}", json={"ticket": fields}
                )
                return to_case(self._field(answer, "ticket"))
            case _:
                raise TypeError(
                    f"The support connector does not handle {type(message).__name__}; "
                    "send it to the actor of the system that owns it."
                )

    async def _ping(self) -> None:
        await self._call("GET", "/users/me")

    # ------------------------------------------------------------------ reads

    async def _list_customers(self, cursor: str | None, limit: int) -> Page[Customer]:
        params = {"page[size]": str(max(1, min(limit, BATCH)))}
        if cursor:
            params["page[after]"] = cursor
        body = await self._call("GET", "/organizations", params=params)
        meta = self._field(body, "meta")
        items = tuple(to_customer(org) for org in self._field(body, "organizations"))
        next_cursor = meta.get("after_cursor") if meta.get("has_more") else None
        return Page(items, next_cursor)

    async def _search(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        body = await self._call("GET", "/organizations/search", params=params)
        found: list[dict[str, Any]] = self._field(body, "organizations")
        return found

    async def _find_customers(self, text: str, limit: int) -> tuple[Customer, ...]:
        """Autocomplete on the name (Zendesk needs 2+ characters), filtered to "contains"."""
        needle = text.strip().lower()
        if len(needle) < 2:
            orgs = await self._search({"name": text.strip()}) if needle else []
        else:
            body = await self._call(
                "GET",
                "/organizations/autocomplete",
                params={"name": text.strip(), "per_page": str(BATCH)},
            )
            orgs = self._field(body, "organizations")
        matches = [org for org in orgs if needle in str(org.get("name", "")).lower()]
        return tuple(to_customer(org) for org in matches[: max(0, limit)])

    # ------------------------------------------------------------------ writes

    async def _ensure_customer(self, message: EnsureCustomer) -> Customer:
        customer = message.customer
        external_id = customer.xref.erp or message.external_id
        org: dict[str, Any] = {"name": customer.name, "external_id": external_id}
        if customer.support_tier is not None:
            org["organization_fields"] = {"support_tier": customer.support_tier}
        body = await self._call(
            "POST", "/organizations/create_or_update", json={"organization": org}
        )
        return to_customer(self._field(body, "organization"))

    async def _update_customer(self, message: UpdateCustomer) -> Customer:
        unknown = sorted(set(message.changes) - set(CUSTOMER_FIELDS))
        if unknown:
            raise Rejected(
                self.system,
                f"support keeps no {', '.join(unknown)} on an organization; "
                f"it can change {', '.join(sorted(CUSTOMER_FIELDS))}",
                details={name: "not kept by support" for name in unknown},
            )
        org: dict[str, Any] = {}
        for name, value in message.changes.items():
            path = CUSTOMER_FIELDS[name]
            if len(path) == 1:
                org[path[0]] = value
            else:
                org.setdefault(path[0], {})[path[1]] = value
        body = await self._call(
            "PUT", f"/organizations/{self._id(message.id)}", json={"organization": org}
        )
        return to_customer(self._field(body, "organization"))

    async def _set_entitlement(self, message: SetEntitlement) -> Entitlement:
        fields: dict[str, Any] = {"entitlement_status": message.status}
        if message.support_tier is not None:
            fields["support_tier"] = message.support_tier
        if message.ends is not None:
            fields["entitlement_ends"] = message.ends.isoformat()
        body = await self._call(
            "PUT",
            f"/organizations/{self._id(message.organization_id)}",
            json={"organization": {"organization_fields": fields}},
        )
        return to_entitlement(self._field(body, "organization"))

    async def _create_case(self, message: CreateCase) -> Case:
        ticket: dict[str, Any] = {
            "subject": message.subject,
            "comment": {"body": message.description},
            "priority": message.priority,
            "type": message.type,
            "organization_id": int(self._id(message.organization_id)),
            "tags": list(message.tags),
        }
        if message.external_id is not None:
            ticket["external_id"] = message.external_id
            if not message.first_delivery:
                # Zendesk keeps an Idempotency-Key for 2 hours only: a redelivery after
                # that (a dead letter replayed next week) finds its own ticket instead
                earlier = await self._ticket_by_external_id(message.external_id)
                if earlier is not None:
                    if earlier.get("subject") != message.subject:
                        raise Conflict(
                            self.system,
                            f"ticket {earlier['id']} already has external_id "
                            f"{message.external_id!r} with another subject",
                        )
                    return to_case(earlier)
        body = await self._call(
            "POST",
            "/tickets",
            json={"ticket": ticket},
            headers={"Idempotency-Key": message.idempotency_key},
        )
        return to_case(self._field(body, "ticket"))

    async def _ticket_by_external_id(self, external_id: str) -> Any | None:
        body = await self._call("GET", "/tickets", params={"external_id": external_id})
        tickets = self._field(body, "tickets")
        return min(tickets, key=lambda t: int(t["id"])) if tickets else None
