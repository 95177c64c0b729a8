"""The CRM's calls and paging: SOQL to the last page, composite calls, bulk query jobs.

``SalesforcePaging`` is the base of ``CrmConnector``. Every call carries the access token
and ``Sforce-Call-Options: client=<endpoint.client_name>``, so change events of our own
writes can be recognised. SOQL reads follow ``nextRecordsUrl`` until ``done``
(``_query``); ``/composite`` sends several subrequests in one call (``_composite``). For
the change feeds: ``COUNT()`` of an object (``_count``), ``getDeleted`` over a window
(``_deleted``), and a whole object listed through a Bulk API 2.0 query job
(``_bulk_listing``, ``_bulk_query``: CSV results read by ``actors.crm.bulk``).
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import anyio

from actors.connector import Endpoint, HttpConnector
from actors.crm.bulk import (
    BULK_ABOVE,
    BULK_PAGE,
    POLL_CAP,
    POLL_FIRST,
    WAIT_SHARE,
    CsvError,
    rows_from_csv,
)
from actors.crm.errors import error_body, raise_for
from actors.crm.mapping import BASE, EPOCH, FEED_FIELDS, FIELD_TYPES, iso, query_url, soql_datetime
from actors.errors import CrosswalkSystemError, MalformedResponse, Rejected, SystemUnavailable
from actors.messages import ChangedRecord

__all__ = ["SalesforcePaging"]

log = logging.getLogger(__name__)


class SalesforcePaging(HttpConnector):
    """Salesforce's calls, SOQL paging and bulk query jobs, under ``CrmConnector``."""

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint)
        token = endpoint.credentials.get("access_token", "")
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "Sforce-Call-Options": f"client={endpoint.client_name}",
        }
        #: initial loads of objects holding more records than this go through a bulk job
        self.bulk_above = BULK_ABOVE
        #: the longest wait, in seconds, for a bulk query job to complete
        self.bulk_wait = endpoint.timeout * WAIT_SHARE

    async def _call(self, method: str, path: str, *, json: object = None) -> Any:
        response = await self.request(method, path, json=json, headers=self._headers)
        if 200 <= response.status < 300:
            return None if response.status == 204 or not response.body else self.decode(response)
        raise_for(response.status, error_body(response), f"{method} {path[:120]}")

    async def _query(self, soql: str) -> list[dict[str, Any]]:
        """Every record the query selects, following ``nextRecordsUrl``."""
        page = await self._call("GET", query_url(soql))
        return await self._rest_of(page)

    async def _rest_of(self, page: Any) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for _ in range(self.endpoint.max_pages):
            if not isinstance(page, dict) or not isinstance(page.get("records"), list):
                raise MalformedResponse(self.system, "query answer without a records list")
            records.extend(page["records"])
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return records
            page = await self._call("GET", str(next_url))
        raise self.paging_limit("a SOQL query")

    async def _composite(
        self, subrequests: list[dict[str, Any]], *, all_or_none: bool, what: str
    ) -> list[tuple[int, Any]]:
        """Subrequest answers in order; the first real failure is raised when all-or-none."""
        body = await self._call(
            "POST",
            f"{BASE}/composite",
            json={"allOrNone": all_or_none, "compositeRequest": subrequests},
        )
        results = body.get("compositeResponse") if isinstance(body, dict) else None
        if not isinstance(results, list) or len(results) != len(subrequests):
            raise MalformedResponse(self.system, f"{what}: composite answer without results")
        out: list[tuple[int, Any]] = []
        for result in results:
            if not isinstance(result, dict) or not isinstance(result.get("httpStatusCode"), int):
                raise MalformedResponse(self.system, f"{what}: composite result without a status")
            out.append((result["httpStatusCode"], result.get("body")))
        if all_or_none:
            failures = [(s, b) for s, b in out if s >= 300]
            real = [
                (s, b)
                for s, b in failures
                if not (isinstance(b, list) and b and b[0].get("errorCode") == "PROCESSING_HALTED")
            ]
            if failures:
                status, error = (real or failures)[0]
                raise_for(status, error, what)
        return out

    def _check(self, status: int, body: Any, what: str) -> Any:
        if status >= 300:
            raise_for(status, body, what)
        return body

    # ---------------------------------------------------------------- change feeds

    async def _count(self, obj: str) -> int:
        body = await self._call("GET", query_url(f"SELECT COUNT() FROM {obj}"))
        total = body.get("totalSize") if isinstance(body, dict) else None
        if not isinstance(total, int):
            raise MalformedResponse(self.system, f"COUNT() of {obj} answered no totalSize")
        return total

    async def _deleted(self, obj: str, since: datetime, now: datetime) -> list[ChangedRecord]:
        """``getDeleted`` over [since - 2 min, now]: Salesforce rounds both ends down to
        the minute, so the window starts early enough to hold every deletion since. A
        deletion within the last minute shows in a later pass (or through its event)."""
        # the window must lie within the last 30 days (INVALID_REPLICATION_DATE otherwise);
        # a cursor older than that (nothing changed for a month) asks for what is kept
        start = max(since - timedelta(minutes=2), now - timedelta(days=29))
        if now - start < timedelta(minutes=1):
            start = now - timedelta(minutes=1)
        body = await self._call(
            "GET",
            f"{BASE}/sobjects/{obj}/deleted/?start={quote(iso(start))}&end={quote(iso(now))}",
        )
        kind = "customer" if obj == "Account" else "opportunity"
        found = body.get("deletedRecords") if isinstance(body, dict) else None
        if not isinstance(found, list):
            raise MalformedResponse(self.system, f"{obj} deleted/ answered no deletedRecords")
        return [
            ChangedRecord(kind, str(row["id"]), None, deleted=True)
            for row in found
            if isinstance(row, dict) and row.get("id")
        ]

    async def _bulk_listing(self, obj: str) -> list[dict[str, Any]]:
        """Every record of ``obj`` through a query job, in the SOQL path's order (a job
        without ORDER BY keeps Salesforce's PK chunking, so the order is made here)."""
        rows = await self._bulk_query(f"SELECT {', '.join(FEED_FIELDS[obj])} FROM {obj}")

        def order(row: dict[str, Any]) -> tuple[datetime, str]:
            return (soql_datetime(row.get("SystemModstamp")) or EPOCH, str(row.get("Id")))

        rows.sort(key=order)
        return rows

    # ---------------------------------------------------------------- bulk query jobs

    async def _bulk_query(self, soql: str) -> list[dict[str, Any]]:
        """Every row ``soql`` selects, through a Bulk API 2.0 query job: create it, read
        its state with a doubling pause until ``JobComplete`` (at most ``bulk_wait``
        seconds and ``max_pages`` reads), read the CSV sets by ``Sforce-Locator``, and
        delete the job whatever happened (aborting it first if it had not completed).

        A job that does not complete in time is ``SystemUnavailable``, retryable: the
        next pass makes a new job. ``Failed`` or ``Aborted`` jobs are reported the same.
        """
        job = await self._call(
            "POST",
            f"{BASE}/jobs/query",
            json={
                "operation": "query",
                "query": soql,
                "contentType": "CSV",
                "columnDelimiter": "COMMA",
                "lineEnding": "LF",
            },
        )
        job_id = job.get("id") if isinstance(job, dict) else None
        if not isinstance(job_id, str) or not job_id:
            raise MalformedResponse(self.system, "a new Bulk API query job came without an id")
        complete = False
        try:
            await self._await_job(job_id)
            complete = True
            return await self._bulk_results(job_id)
        finally:
            # shielded: a cut deadline must not leave the job behind if a call can help
            with anyio.move_on_after(self.endpoint.timeout, shield=True):
                await self._drop_job(job_id, complete=complete)

    async def _await_job(self, job_id: str) -> None:
        path = f"{BASE}/jobs/query/{job_id}"
        give_up = anyio.current_time() + self.bulk_wait
        pause = POLL_FIRST
        for _ in range(self.endpoint.max_pages):
            info = await self._call("GET", path)
            state = info.get("state") if isinstance(info, dict) else None
            if state == "JobComplete":
                return
            if state in ("Failed", "Aborted"):
                reason = info.get("errorMessage") or "no reason given"
                raise SystemUnavailable(
                    self.system, f"Bulk API query job {job_id} ended {state}: {reason}"
                )
            if not isinstance(state, str):
                raise MalformedResponse(self.system, f"Bulk API query job {job_id}: no state")
            if anyio.current_time() + pause > give_up:
                break
            await anyio.sleep(pause)
            pause = min(pause * 2, POLL_CAP)
        raise SystemUnavailable(
            self.system,
            f"Bulk API query job {job_id} did not complete within {self.bulk_wait:g} s; "
            "the next pass starts a new job (a large org may need a longer systems.crm.timeout)",
        )

    async def _bulk_results(self, job_id: str) -> list[dict[str, Any]]:
        path = f"{BASE}/jobs/query/{job_id}/results"
        headers = {**self._headers, "Accept": "text/csv"}
        rows: list[dict[str, Any]] = []
        locator: str | None = None
        for _ in range(self.endpoint.max_pages):
            params = {"maxRecords": str(BULK_PAGE)}
            if locator is not None:
                params["locator"] = locator
            response = await self.request("GET", path, params=params, headers=headers)
            if not 200 <= response.status < 300:
                raise_for(response.status, error_body(response), f"GET {path}")
            try:
                found = rows_from_csv(response.body, FIELD_TYPES)
            except CsvError as exc:
                raise MalformedResponse(
                    self.system, f"{path}: unreadable CSV: {exc}", status=response.status
                ) from None
            said = response.headers.get("Sforce-NumberOfRecords")
            if said is not None and said.isdigit() and int(said) != len(found):
                raise MalformedResponse(
                    self.system, f"{path}: Sforce-NumberOfRecords {said}, {len(found)} rows read"
                )
            rows.extend(found)
            locator = response.headers.get("Sforce-Locator")
            if not locator or locator == "null":
                return rows
        raise self.paging_limit(f"Bulk API query job {job_id}'s results")

    async def _drop_job(self, job_id: str, *, complete: bool) -> None:
        """Abort (if still running) and delete the job; a failure here is only logged:
        the rows are read or the real error is on its way, and Salesforce deletes jobs
        after seven days anyway."""
        path = f"{BASE}/jobs/query/{job_id}"
        try:
            if not complete:
                # Rejected: it completed (or failed) meanwhile; delete it all the same
                with contextlib.suppress(Rejected):
                    await self._call("PATCH", path, json={"state": "Aborted"})
            await self._call("DELETE", path)
        except CrosswalkSystemError as exc:
            log.warning("could not delete Bulk API query job %s: %s", job_id, exc)
