"""Support's calls and paging: one Zendesk request, batched and cursor-paged reads, feeds.

``ZendeskPaging`` is the base of ``SupportConnector``. Reads batch where Zendesk allows it
(``organizations/show_many`` takes 100 ids); cases are read per organization
(``organizations/{id}/tickets``, cursor-paged) with a bounded number of calls in flight.
The change feeds (``_changes``) are Zendesk's incremental exports, plus the tickets of
the export's held-back minute (``_recent_tickets``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from actors._tasks import fan_out
from actors.connector import Endpoint, HttpConnector
from actors.errors import MalformedResponse, NotFound, Rejected
from actors.messages import ChangedRecord, ChangePage
from actors.support.errors import raise_for
from actors.support.mapping import to_case, to_customer, to_entitlement
from canonical.models import Case

__all__ = ["API", "BATCH", "ZendeskPaging"]

API = "/api/v2"
#: Zendesk's show_many and page[size] ceiling
BATCH = 100
#: per-organization ticket reads in flight at once for one GetCases
CASE_READS_IN_FLIGHT = 8
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


def _numeric_ids(ids: Iterable[str]) -> list[str]:
    """Zendesk ids are integers: anything else cannot exist there, so it is left out."""
    return list(dict.fromkeys(i for i in ids if i.isdigit() and len(i) <= 18))


class ZendeskPaging(HttpConnector):
    """Zendesk's calls, batched and paged reads and incremental exports, under
    ``SupportConnector``."""

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint)
        self._headers = {
            "Authorization": _auth_header(endpoint.credentials),
            "Accept": "application/json",
        }

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
            raise_for(
                response,
                f"{method} {API}{path}",
                max_retry_after=self.endpoint.max_retry_after,
            )
        return self.decode(response)

    def _field(self, body: Any, key: str) -> Any:
        if not isinstance(body, dict) or key not in body:
            raise MalformedResponse(self.system, f"answer has no {key!r}: {str(body)[:120]}")
        return body[key]

    def _id(self, value: str) -> str:
        if not value.isdigit():
            raise NotFound(self.system, f"{value!r} is not a Zendesk id (ids are integers)")
        return value

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

    async def _cases(self, ids: Iterable[str]) -> dict[str, tuple[Case, ...]]:
        """Each organization's tickets, at most ``CASE_READS_IN_FLIGHT`` reads at a time."""

        async def read(org_id: str) -> tuple[Case, ...] | None:
            try:
                return await self._organization_tickets(org_id)
            except NotFound:
                return None  # no such organization: absent from the answer, as documented

        return await fan_out(_numeric_ids(ids), read, limit=CASE_READS_IN_FLIGHT)

    async def _organization_tickets(self, org_id: str) -> tuple[Case, ...]:
        cases: list[Case] = []
        params = {"page[size]": str(BATCH)}
        while True:
            body = await self._call("GET", f"/organizations/{org_id}/tickets", params=params)
            cases.extend(to_case(t) for t in self._field(body, "tickets"))
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
                case = to_case(ticket)
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
                records.append(ChangedRecord("customer", org_id, org_id, to_customer(org)))
                records.append(ChangedRecord("entitlement", org_id, org_id, to_entitlement(org)))
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
                case = to_case(ticket)
                if case.updated_at is not None and case.updated_at < horizon:
                    return found
                found.append(ChangedRecord("case", case.id, case.organization_id or "", case))
            if not body.get("next_page"):
                return found
        return found
