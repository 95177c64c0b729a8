"""The support connector: Zendesk Support API v2 <-> the canonical model.

Customers are Zendesk organizations (``external_id`` = ERP BusinessPartner), entitlements
live in ``organization_fields``, cases are tickets. Reads batch where Zendesk allows it
(``organizations/show_many`` takes 100 ids); cases are read per organization
(``organizations/{id}/tickets``, cursor-paged) with a bounded number of calls in flight.
Writes use Zendesk's own duplicate guards: ``create_or_update`` matched by
``external_id`` for organizations, ``Idempotency-Key`` for new tickets.

Vendor answers map to ``actors.errors``: 429 -> Throttled with ``Retry-After``;
404 -> NotFound; 422 ``RecordInvalid`` -> Rejected naming the fields (Conflict when a
value is a duplicate); 400 ``IdempotentRequestError`` -> Conflict; 5xx -> SystemUnavailable;
an unreadable body -> MalformedResponse.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, NoReturn

import anyio

from actors.connector import Endpoint, HttpConnector, Response, retry_after_seconds
from actors.errors import (
    Conflict,
    CrosswalkSystemError,
    MalformedResponse,
    NotFound,
    Rejected,
    SystemUnavailable,
    Throttled,
)
from actors.messages import (
    ChangedRecord,
    ChangePage,
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
from canonical.models import Case, Customer, Entitlement, System, XRef

__all__ = ["SupportConnector"]

API = "/api/v2"
#: Zendesk's show_many and page[size] ceiling
BATCH = 100
#: per-organization ticket reads in flight at once for one GetCases
CASE_READS_IN_FLIGHT = 8
#: canonical customer fields support can change, and where they live on an organization
_CUSTOMER_FIELDS = {
    "name": ("name",),
    "support_tier": ("organization_fields", "support_tier"),
    "billing_status": ("organization_fields", "billing_status"),
}


#: how far back the recent-tickets read looks (the export's held-back minute, and a margin)
RECENT_WINDOW = timedelta(seconds=90)
#: pages of 100 it reads at most
RECENT_PAGES = 5


def _auth_header(credentials: Mapping[str, str]) -> str:
    """Basic ``{email}/token:{api_token}`` (the sandbox's by default) or Bearer."""
    if "bearer" in credentials:
        return f"Bearer {credentials['bearer']}"
    email = credentials.get("email", "agent@example.com")
    token = credentials.get("api_token", credentials.get("token", "sandbox"))
    return "Basic " + base64.b64encode(f"{email}/token:{token}".encode()).decode()


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _date(value: object) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _numeric_ids(ids: Iterable[str]) -> list[str]:
    """Zendesk ids are integers: anything else cannot exist there, so it is left out."""
    return list(dict.fromkeys(i for i in ids if i.isdigit() and len(i) <= 18))


class SupportConnector(HttpConnector):
    """Connector for the support system (Zendesk Support API v2)."""

    system = System.SUPPORT

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint)
        self._headers = {
            "Authorization": _auth_header(endpoint.credentials),
            "Accept": "application/json",
        }

    # ------------------------------------------------------------------ dispatch

    async def handle(self, message: Message) -> object:
        match message:
            case GetCustomers(ids=ids):
                orgs = await self._show_many(ids)
                return {key: self._customer(org) for key, org in orgs.items()}
            case GetEntitlements(organization_ids=ids):
                orgs = await self._show_many(ids)
                return {key: self._entitlement(org) for key, org in orgs.items()}
            case ListCustomers(cursor=cursor, limit=limit):
                return await self._list_customers(cursor, limit)
            case FindCustomers(text=text, limit=limit):
                return await self._find_customers(text, limit)
            case FindCustomerByXRef(erp_bp=erp_bp):
                found = await self._search({"external_id": erp_bp})
                return self._customer(found[0]) if found else None
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
                return self._case(self._field(answer, "ticket"))
            case _:
                raise TypeError(
                    f"The support connector does not handle {type(message).__name__}; "
                    "send it to the actor of the system that owns it."
                )

    async def _ping(self) -> None:
        await self._call("GET", "/users/me")

    # ------------------------------------------------------------------ HTTP

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        hdrs = dict(self._headers)
        hdrs.update(headers or {})
        response = await self.request(method, API + path, params=params, json=json, headers=hdrs)
        if response.status >= 300:
            self._raise_for(method, path, response)
        return self.decode(response)

    def _raise_for(self, method: str, path: str, response: Response) -> NoReturn:
        status = response.status
        what = f"{method} {API}{path}"
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        description = body.get("description") if isinstance(body, dict) else None
        text = f"{what} answered {status} {error or ''}: {description or response.body[:120]!r}"
        if status == 429:
            raise Throttled(
                self.system,
                f"{what} was rate limited; wait for Retry-After before calling again",
                status=status,
                retry_after=retry_after_seconds(response.headers, self.endpoint.max_retry_after),
            )
        if status >= 500:
            raise SystemUnavailable(self.system, text, status=status)
        if status == 404:
            raise NotFound(self.system, text, status=status)
        if status in (401, 403):
            raise Rejected(
                self.system,
                f"{text}; check the support credentials in policies/systems.toml",
                status=status,
            )
        details = body.get("details") if isinstance(body, dict) else None
        fields = dict(details) if isinstance(details, dict) else {}
        duplicate = any(
            isinstance(item, dict) and item.get("error") == "DuplicateValue"
            for problems in fields.values()
            if isinstance(problems, list)
            for item in problems
        )
        if status == 409 or duplicate or error == "IdempotentRequestError":
            raise Conflict(self.system, text, status=status, details=fields)
        if fields:
            text = f"{text}; fields: {', '.join(sorted(fields))}"
        raise Rejected(self.system, text, status=status, details=fields)

    def _field(self, body: Any, key: str) -> Any:
        if not isinstance(body, dict) or key not in body:
            raise MalformedResponse(self.system, f"answer has no {key!r}: {str(body)[:120]}")
        return body[key]

    def _id(self, value: str) -> str:
        if not value.isdigit():
            raise NotFound(self.system, f"{value!r} is not a Zendesk id (ids are integers)")
        return value

    # ------------------------------------------------------------------ reads

    async def _show_many(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Organizations by id, 100 per call; unknown ids are simply absent."""
        wanted = _numeric_ids(ids)
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), BATCH):
            chunk = wanted[start : start + BATCH]
            body = await self._call(
                "GET", "/organizations/show_many", params={"ids": ",".join(chunk)}
            )
            for org in self._field(body, "organizations"):
                found[str(org["id"])] = org
        return found

    async def _list_customers(self, cursor: str | None, limit: int) -> Page[Customer]:
        params = {"page[size]": str(max(1, min(limit, BATCH)))}
        if cursor:
            params["page[after]"] = cursor
        body = await self._call("GET", "/organizations", params=params)
        meta = self._field(body, "meta")
        items = tuple(self._customer(org) for org in self._field(body, "organizations"))
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
        return tuple(self._customer(org) for org in matches[: max(0, limit)])

    async def _cases(self, ids: Iterable[str]) -> dict[str, tuple[Case, ...]]:
        wanted = _numeric_ids(ids)
        result: dict[str, tuple[Case, ...]] = {}
        if len(wanted) == 1:
            # one organization (a customer 360): read it here, without a task group, a
            # semaphore and a task, which cost more CPU than the read's own bookkeeping
            with contextlib.suppress(NotFound):
                result[wanted[0]] = await self._organization_tickets(wanted[0])
            return result
        limit = anyio.Semaphore(CASE_READS_IN_FLIGHT)

        async def read(org_id: str) -> None:
            async with limit:
                # no such organization: absent from the answer, as GetCases documents
                with contextlib.suppress(NotFound):
                    result[org_id] = await self._organization_tickets(org_id)

        try:
            async with anyio.create_task_group() as tg:
                for org_id in wanted:
                    tg.start_soon(read, org_id)
        except BaseExceptionGroup as group:
            # the actor maps single errors (Throttled, SystemUnavailable ...), not groups
            raise _first_error(group) from group
        return {org_id: result[org_id] for org_id in wanted if org_id in result}

    async def _organization_tickets(self, org_id: str) -> tuple[Case, ...]:
        cases: list[Case] = []
        params = {"page[size]": str(BATCH)}
        while True:
            body = await self._call("GET", f"/organizations/{org_id}/tickets", params=params)
            cases.extend(self._case(t) for t in self._field(body, "tickets"))
            meta = self._field(body, "meta")
            if not meta.get("has_more") or not meta.get("after_cursor"):
                return tuple(cases)
            params = {"page[size]": str(BATCH), "page[after]": str(meta["after_cursor"])}

    # ------------------------------------------------------------------ change feeds

    async def _changes(self, feed: str, cursor: str | None) -> ChangePage:
        """Zendesk's incremental exports (their own limit: 10 requests a minute).

        ``tickets``: the cursor-based export, ``start_time=0`` first, then ``cursor=``;
        a deleted ticket comes back with status ``deleted``. ``organizations``: the
        time-based export from ``start_time`` (each organization is a customer and its
        entitlement); the next start is the page's ``end_time``."""
        if feed == "tickets":
            if cursor is None:
                params = {"start_time": "0"}
            elif cursor.startswith("c:"):
                params = {"cursor": cursor[2:]}
            else:
                raise Rejected(self.system, f"cursor {cursor!r} was not made by this connector")
            body = await self._call("GET", "/incremental/tickets/cursor.json", params=params)
            records: list[ChangedRecord] = []
            for ticket in self._field(body, "tickets"):
                if ticket.get("status") == "deleted":
                    org = ticket.get("organization_id")
                    records.append(
                        ChangedRecord(
                            "case",
                            str(ticket["id"]),
                            str(org) if org is not None else None,
                            deleted=True,
                        )
                    )
                    continue
                case = self._case(ticket)
                records.append(ChangedRecord("case", case.id, case.organization_id or "", case))
            after = body.get("after_cursor")
            next_cursor = f"c:{after}" if after else (cursor or "c:")
            more = not body.get("end_of_stream", True)
            if not more and cursor is not None:
                records.extend(await self._recent_tickets())
            return ChangePage(tuple(records), next_cursor, more)
        if feed == "organizations":
            start = "0" if cursor is None else cursor.removeprefix("t:")
            if not start.isdigit():
                raise Rejected(self.system, f"cursor {cursor!r} was not made by this connector")
            body = await self._call(
                "GET", "/incremental/organizations.json", params={"start_time": start}
            )
            records = []
            for org in self._field(body, "organizations"):
                org_id = str(org["id"])
                if org.get("deleted_at"):
                    records.append(ChangedRecord("customer", org_id, org_id, deleted=True))
                    records.append(ChangedRecord("entitlement", org_id, org_id, deleted=True))
                    continue
                records.append(ChangedRecord("customer", org_id, org_id, self._customer(org)))
                records.append(ChangedRecord("entitlement", org_id, org_id, self._entitlement(org)))
            end = body.get("end_time")
            next_start = str(int(end)) if isinstance(end, int | float) else start
            return ChangePage(
                tuple(records), f"t:{next_start}", not body.get("end_of_stream", True)
            )
        raise Rejected(self.system, f"support has no change feed {feed!r}")

    async def _recent_tickets(self) -> list[ChangedRecord]:
        """Tickets changed within the export's held-back minute (Zendesk's incremental
        exports leave out the last minute), newest first from the ticket list: without
        them a lost webhook would show only a minute later. The export returns them
        again once the minute has passed (the same state: nothing applied twice)."""
        horizon = datetime.now(UTC) - RECENT_WINDOW
        found: list[ChangedRecord] = []
        for page in range(1, RECENT_PAGES + 1):
            body = await self._call(
                "GET",
                "/tickets",
                params={
                    "sort_by": "updated_at",
                    "sort_order": "desc",
                    "per_page": str(BATCH),
                    "page": str(page),
                },
            )
            tickets = self._field(body, "tickets")
            for ticket in tickets:
                case = self._case(ticket)
                if case.updated_at is not None and case.updated_at < horizon:
                    return found
                found.append(ChangedRecord("case", case.id, case.organization_id or "", case))
            if not body.get("next_page"):
                return found
        return found

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
        return self._customer(self._field(body, "organization"))

    async def _update_customer(self, message: UpdateCustomer) -> Customer:
        unknown = sorted(set(message.changes) - set(_CUSTOMER_FIELDS))
        if unknown:
            raise Rejected(
                self.system,
                f"support keeps no {', '.join(unknown)} on an organization; "
                f"it can change {', '.join(sorted(_CUSTOMER_FIELDS))}",
                details={name: "not kept by support" for name in unknown},
            )
        org: dict[str, Any] = {}
        for name, value in message.changes.items():
            path = _CUSTOMER_FIELDS[name]
            if len(path) == 1:
                org[path[0]] = value
            else:
                org.setdefault(path[0], {})[path[1]] = value
        body = await self._call(
            "PUT", f"/organizations/{self._id(message.id)}", json={"organization": org}
        )
        return self._customer(self._field(body, "organization"))

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
        return self._entitlement(self._field(body, "organization"))

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
                    return self._case(earlier)
        body = await self._call(
            "POST",
            "/tickets",
            json={"ticket": ticket},
            headers={"Idempotency-Key": message.idempotency_key},
        )
        return self._case(self._field(body, "ticket"))

    async def _ticket_by_external_id(self, external_id: str) -> Any | None:
        body = await self._call("GET", "/tickets", params={"external_id": external_id})
        tickets = self._field(body, "tickets")
        return min(tickets, key=lambda t: int(t["id"])) if tickets else None

    # ------------------------------------------------------------------ translation

    def _customer(self, org: Any) -> Customer:
        try:
            org_id = str(org["id"])
            fields = org.get("organization_fields") or {}
            external_id = org.get("external_id")
            return Customer(
                system=self.system,
                id=org_id,
                name=str(org["name"]),
                xref=XRef(erp=str(external_id) if external_id else None, support=org_id),
                support_tier=fields.get("support_tier"),
                updated_at=_time(org.get("updated_at")),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise MalformedResponse(
                self.system, f"organization without {exc}: {org!r:.120}"
            ) from exc

    def _entitlement(self, org: Any) -> Entitlement:
        try:
            fields = org.get("organization_fields") or {}
            return Entitlement(
                system=self.system,
                organization_id=str(org["id"]),
                status=fields.get("entitlement_status") or "inactive",
                support_tier=fields.get("support_tier"),
                ends=_date(fields.get("entitlement_ends")),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise MalformedResponse(
                self.system, f"organization without {exc}: {org!r:.120}"
            ) from exc

    def _case(self, ticket: Any) -> Case:
        try:
            org_id = ticket.get("organization_id")
            return Case(
                system=self.system,
                id=str(ticket["id"]),
                organization_id=str(org_id) if org_id is not None else None,
                subject=str(ticket.get("subject") or ""),
                status=str(ticket["status"]),
                priority=ticket.get("priority"),
                type=ticket.get("type"),
                description=ticket.get("description"),
                external_id=ticket.get("external_id"),
                tags=tuple(ticket.get("tags") or ()),
                created_at=_time(ticket.get("created_at")),
                updated_at=_time(ticket.get("updated_at")),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise MalformedResponse(self.system, f"ticket without {exc}: {ticket!r:.120}") from exc


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first system error in a task group's failures (else the group itself)."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            inner = _first_error(exc)
            if inner is not exc:
                return inner
        elif isinstance(exc, CrosswalkSystemError):
            return exc
    return group
