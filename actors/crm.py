"""The CRM connector: Salesforce REST API v60.0 <-> the canonical model.

Reads are SOQL (``GET /query``) with every value escaped by ``soql_quote`` /
``soql_like``, following ``nextRecordsUrl`` until ``done``. Batched reads put up to
``CHUNK`` ids in one ``IN (...)`` list. A customer's email is its billing contact's
(``Contact.Crosswalk_Key__c = '<erp bp>-billing'``): the account and contact queries
travel together in one ``/composite`` call. The change feeds' initial load of an object
holding more than ``BULK_ABOVE`` records reads it through a Bulk API 2.0 query job
(``/jobs/query``, CSV results read by ``actors.crm_bulk``; see ``_changes``).

Writes: ``EnsureCustomer`` upserts the account by the external id ``ERP_Customer_Id__c``
(``customer.xref.erp``) and the billing contact by ``Crosswalk_Key__c``, then reads the
account back, all in one ``allOrNone`` composite call; sending it twice has one effect,
which is how Salesforce makes a write idempotent (it has no idempotency-key header, so
``idempotency_key`` is not sent). ``UpdateCustomer`` / ``UpdateOpportunity`` PATCH and
read back in one composite call. Every call sends ``Sforce-Call-Options:
client=<endpoint.client_name>`` so change events of our own writes can be recognised.

Error mapping (documented choices):
- 403 ``REQUEST_LIMIT_EXCEEDED`` -> ``Throttled`` with ``retry_after = THROTTLE_PAUSE``
  (5 s: Salesforce gives no hint, and the limit is an allowance, not a momentary spike);
- 401 ``INVALID_SESSION_ID`` -> ``SystemUnavailable`` marked not retryable: the system is
  unusable for us (the breaker may open) but retrying with the same token cannot help;
- 404 -> ``NotFound``; 300 (several records carry the external id) and
  ``DUPLICATE_VALUE`` -> ``Conflict``; other 4xx (``MALFORMED_QUERY``,
  ``INVALID_FIELD``, ``REQUIRED_FIELD_MISSING`` ...) -> ``Rejected`` with the
  ``errorCode`` and ``fields`` in ``details``; 5xx -> ``SystemUnavailable``; an
  unreadable body -> ``MalformedResponse``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import anyio

from actors.connector import Endpoint, HttpConnector, Response
from actors.crm_bulk import (
    BULK_ABOVE,
    BULK_PAGE,
    POLL_CAP,
    POLL_FIRST,
    WAIT_SHARE,
    CsvError,
    FieldType,
    rows_from_csv,
)
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
    CreateTask,
    EnsureCustomer,
    FindCustomerByXRef,
    FindCustomers,
    GetChanges,
    GetCustomers,
    GetOpportunities,
    GetOpportunity,
    ListCustomers,
    Message,
    Page,
    UpdateCustomer,
    UpdateOpportunity,
)
from canonical import Customer, Opportunity, System, XRef

__all__ = ["CHUNK", "THROTTLE_PAUSE", "CrmConnector", "soql_like", "soql_quote"]

log = logging.getLogger(__name__)

BASE = "/services/data/v60.0"
#: ids per ``IN (...)`` list: keeps the query well under Salesforce's URL length limits
CHUNK = 200
#: seconds to pause after REQUEST_LIMIT_EXCEEDED (Salesforce sends no Retry-After)
THROTTLE_PAUSE = 5.0

ACCOUNT_FIELDS = (
    "Id",
    "Name",
    "ERP_Customer_Id__c",
    "Tax_Id__c",
    "BillingCountry",
    "Payment_Terms__c",
    "CurrencyIsoCode",
    "Segment__c",
    "Industry",
    "Owner_Name__c",
    "LastModifiedDate",
)
OPPORTUNITY_FIELDS = (
    "Id",
    "AccountId",
    "Name",
    "StageName",
    "Amount",
    "CloseDate",
    "IsClosed",
    "IsWon",
    "ERP_Order_Number__c",
    "Products__c",
    "LastModifiedDate",
)
#: canonical Customer field -> Account field (``billing_status`` is for invoice propagation)
CUSTOMER_FIELDS = {
    "name": "Name",
    "tax_id": "Tax_Id__c",
    "country": "BillingCountry",
    "payment_terms": "Payment_Terms__c",
    "currency": "CurrencyIsoCode",
    "segment": "Segment__c",
    "industry": "Industry",
    "owner": "Owner_Name__c",
    "billing_status": "Billing_Status__c",
}
#: the fields read here that are not text, for reading bulk query CSV
FIELD_TYPES: dict[str, FieldType] = {
    "Amount": "number",
    "IsClosed": "boolean",
    "IsWon": "boolean",
    "LastModifiedDate": "datetime",
    "SystemModstamp": "datetime",
}
#: what the change feeds read of each object
_FEED_FIELDS = {
    "Account": (*ACCOUNT_FIELDS, "SystemModstamp"),
    "Opportunity": (*OPPORTUNITY_FIELDS, "SystemModstamp"),
}
_BILLING_CONTACTS = "SELECT AccountId, Email FROM Contact WHERE Crosswalk_Key__c LIKE '%-billing'"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SOQL_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_SOQL_ESCAPES.update({"\b": "\\b", "\f": "\\f"})


# str.translate tables: one C-level pass instead of a Python step per character
_QUOTE_TABLE = str.maketrans(_SOQL_ESCAPES)
_LIKE_TABLE = str.maketrans({**_SOQL_ESCAPES, "%": "\\%", "_": "\\_"})


def soql_quote(value: str) -> str:
    """``value`` as a SOQL string literal: quotes, backslashes and controls escaped."""
    return "'" + value.translate(_QUOTE_TABLE) + "'"


def soql_like(value: str) -> str:
    """``%value%`` as a LIKE pattern literal, with ``%`` and ``_`` in ``value`` literal."""
    return f"'%{value.translate(_LIKE_TABLE)}%'"


def _in_list(values: Iterable[str]) -> str:
    return "(" + ", ".join(soql_quote(v) for v in values) + ")"


def _chunks(values: tuple[str, ...]) -> Iterable[tuple[str, ...]]:
    unique = tuple(dict.fromkeys(values))
    for start in range(0, len(unique), CHUNK):
        yield unique[start : start + CHUNK]


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    # fromisoformat reads Salesforce's 2024-05-01T10:20:30.000+0000 in C (strptime is
    # pure Python and several times slower); a time without an offset is not Salesforce's
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _soql_time(moment: datetime) -> str:
    """A SOQL datetime literal (UTC, whole seconds: ``>=`` reads the second again)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _select(fields: tuple[str, ...], obj: str, where: str, tail: str = "") -> str:
    return f"SELECT {', '.join(fields)} FROM {obj} WHERE {where}{tail}"


def _query_url(soql: str) -> str:
    return f"{BASE}/query?q={quote(soql, safe='')}"


class CrmConnector(HttpConnector):
    """Salesforce (the CRM) behind the connector contract; see the module docstring."""

    system = System.CRM

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

    # ---------------------------------------------------------------- dispatch

    async def handle(self, message: Message) -> object:
        match message:
            case GetCustomers(ids=ids):
                return await self._get_customers(ids)
            case FindCustomers(text=text, limit=limit):
                return await self._find_customers(text, limit)
            case ListCustomers(cursor=cursor, limit=limit):
                return await self._list_customers(cursor, limit)
            case FindCustomerByXRef(erp_bp=erp_bp):
                return await self._customer_by_xref(erp_bp)
            case GetOpportunities(account_ids=account_ids):
                return await self._get_opportunities(account_ids)
            case GetOpportunity(id=opp_id):
                return await self._get_opportunity(opp_id)
            case GetChanges(feed=feed, cursor=cursor):
                return await self._changes(feed, cursor)
            case CreateTask():
                return await self._create_task(message)
            case EnsureCustomer():
                return await self._ensure_customer(message)
            case UpdateCustomer(id=account_id, changes=changes):
                return await self._update_customer(account_id, changes)
            case UpdateOpportunity(id=opp_id, fields=fields):
                return await self._update_opportunity(opp_id, fields)
        raise TypeError(
            f"The CRM connector does not handle {type(message).__name__}: "
            "send it to the system that owns it"
        )

    async def _ping(self) -> None:
        await self._call("GET", f"{BASE}/limits")

    # ---------------------------------------------------------------- HTTP and errors

    async def _call(self, method: str, path: str, *, json: object = None) -> Any:
        response = await self.request(method, path, json=json, headers=self._headers)
        if 200 <= response.status < 300:
            return None if response.status == 204 or not response.body else self.decode(response)
        self._raise_for(response.status, self._error_body(response), f"{method} {path[:120]}")
        raise AssertionError("unreachable")

    def _error_body(self, response: Response) -> Any:
        try:
            return response.json()
        except ValueError:
            if response.status >= 500:
                return None
            raise MalformedResponse(
                self.system, f"unreadable {response.status} answer", status=response.status
            ) from None

    def _raise_for(self, status: int, body: Any, what: str) -> None:
        first = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else {}
        code = str(first.get("errorCode", ""))
        message = str(first.get("message", "")).strip() or f"HTTP {status}"
        details: dict[str, object] = {"errorCode": code, "fields": first.get("fields") or []}
        if status >= 500:
            raise SystemUnavailable(self.system, f"{what}: {message}", status=status)
        if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
            raise Throttled(
                self.system,
                f"{what}: {message} (the org's API allowance is spent; pausing)",
                status=status,
                retry_after=THROTTLE_PAUSE,
            )
        if status == 401:
            error = SystemUnavailable(
                self.system,
                f"{what}: {message}: check the CRM access_token in policies/systems.toml",
                status=status,
                details=details,
            )
            error.retryable = False  # the same token will be refused again
            raise error
        if status == 404:
            raise NotFound(self.system, f"{what}: {message}", status=status, details=details)
        if status == 300:
            urls = body if isinstance(body, list) else []
            raise Conflict(
                self.system,
                f"{what}: several records carry this external id: {urls}",
                status=status,
                details={"errorCode": "MULTIPLE_CHOICES", "records": urls},
            )
        if code == "DUPLICATE_VALUE":
            raise Conflict(self.system, f"{what}: {message}", status=status, details=details)
        raise Rejected(self.system, f"{what}: {code}: {message}", status=status, details=details)

    async def _query(self, soql: str) -> list[dict[str, Any]]:
        """Every record the query selects, following ``nextRecordsUrl``."""
        page = await self._call("GET", _query_url(soql))
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
                self._raise_for(status, error, what)
        return out

    def _check(self, status: int, body: Any, what: str) -> Any:
        if status >= 300:
            self._raise_for(status, body, what)
        return body

    # ---------------------------------------------------------------- translation

    def _customer(self, record: dict[str, Any], email: str | None) -> Customer:
        try:
            return Customer(
                system=System.CRM,
                id=str(record["Id"]),
                name=str(record["Name"]),
                xref=XRef(erp=record.get("ERP_Customer_Id__c"), crm=str(record["Id"])),
                tax_id=record.get("Tax_Id__c"),
                country=record.get("BillingCountry"),
                payment_terms=record.get("Payment_Terms__c"),
                currency=record.get("CurrencyIsoCode"),
                email=email,
                segment=record.get("Segment__c"),
                industry=record.get("Industry"),
                owner=record.get("Owner_Name__c"),
                updated_at=_datetime(record.get("LastModifiedDate")),
            )
        except (KeyError, TypeError) as exc:
            raise MalformedResponse(self.system, f"Account record without {exc}") from exc

    def _opportunity(self, record: dict[str, Any]) -> Opportunity:
        try:
            amount = record.get("Amount")
            close = record.get("CloseDate")
            products = record.get("Products__c") or ""
            return Opportunity(
                system=System.CRM,
                id=str(record["Id"]),
                account_id=str(record.get("AccountId") or ""),
                name=str(record["Name"]),
                stage=str(record["StageName"]),
                amount=None if amount is None else Decimal(str(amount)),
                close_date=date.fromisoformat(close) if close else None,
                is_closed=bool(record.get("IsClosed")),
                is_won=bool(record.get("IsWon")),
                erp_order_number=record.get("ERP_Order_Number__c"),
                products=tuple(p for p in products.split(";") if p),
                updated_at=_datetime(record.get("LastModifiedDate")),
            )
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise MalformedResponse(self.system, f"Opportunity record unreadable: {exc}") from exc

    @staticmethod
    def _emails(contacts: list[dict[str, Any]]) -> dict[str, str]:
        emails: dict[str, str] = {}
        for row in contacts:
            account, email = row.get("AccountId"), row.get("Email")
            if isinstance(account, str) and isinstance(email, str):
                emails.setdefault(account, email)
        return emails

    # ---------------------------------------------------------------- change feeds

    async def _changes(self, feed: str, cursor: str | None) -> ChangePage:
        """SOQL on ``SystemModstamp`` (every record when there is no cursor) and
        ``/sobjects/{Type}/deleted/`` for what was deleted since. The cursor is the newest
        ``SystemModstamp`` seen, read again with ``>=`` so none of its second is missed.

        The initial load (no cursor) first asks ``SELECT COUNT() FROM <object>``: past
        ``bulk_above`` records it lists them with a Bulk API 2.0 query job instead of
        following ``nextRecordsUrl`` (one job, CSV sets of ``BULK_PAGE`` rows, see
        ``_bulk_query``); the Account feed then reads the billing contacts' emails with a
        second job rather than one composite call per ``CHUNK`` accounts. At or below
        the threshold, and for every incremental read, SOQL serves: a job costs at least
        four calls (create, poll, results, delete)."""
        obj = {"customers": "Account", "opportunities": "Opportunity"}.get(feed)
        if obj is None:
            raise Rejected(self.system, f"the CRM has no change feed {feed!r}")
        since: datetime | None = None
        if cursor is not None:
            since = _datetime(cursor.removeprefix("ts:")) if cursor.startswith("ts:") else None
            if since is None:
                raise Rejected(self.system, f"cursor {cursor!r} was not made by this connector")
        now = datetime.now(UTC)
        records: list[ChangedRecord] = []
        if since is None and await self._count(obj) > self.bulk_above:
            rows = await self._bulk_listing(obj)
            if obj == "Account":
                emails = self._emails(await self._bulk_query(_BILLING_CONTACTS))
                for row in rows:
                    customer = self._customer(row, emails.get(str(row.get("Id"))))
                    records.append(ChangedRecord("customer", customer.id, customer.id, customer))
        else:
            where = "Id != null" if since is None else f"SystemModstamp >= {_soql_time(since)}"
            fields = ("Id", "SystemModstamp") if obj == "Account" else _FEED_FIELDS[obj]
            rows = await self._query(_select(fields, obj, where, " ORDER BY SystemModstamp, Id"))
            if obj == "Account":
                ids = tuple(str(row["Id"]) for row in rows if row.get("Id"))
                found = await self._get_customers(ids) if ids else {}
                records.extend(ChangedRecord("customer", i, i, c) for i, c in found.items())
        newest = since
        for row in rows:
            stamp = _datetime(row.get("SystemModstamp"))
            if stamp is not None and (newest is None or stamp > newest):
                newest = stamp
        if obj == "Opportunity":
            for opp in map(self._opportunity, rows):
                records.append(ChangedRecord("opportunity", opp.id, opp.account_id, opp))
        if since is not None:
            records.extend(await self._deleted(obj, since, now))
        if newest is None:
            newest = now
        return ChangePage(tuple(records), f"ts:{newest.isoformat()}", False)

    async def _count(self, obj: str) -> int:
        body = await self._call("GET", _query_url(f"SELECT COUNT() FROM {obj}"))
        total = body.get("totalSize") if isinstance(body, dict) else None
        if not isinstance(total, int):
            raise MalformedResponse(self.system, f"COUNT() of {obj} answered no totalSize")
        return total

    async def _bulk_listing(self, obj: str) -> list[dict[str, Any]]:
        """Every record of ``obj`` through a query job, in the SOQL path's order (a job
        without ORDER BY keeps Salesforce's PK chunking, so the order is made here)."""
        rows = await self._bulk_query(f"SELECT {', '.join(_FEED_FIELDS[obj])} FROM {obj}")

        def order(row: dict[str, Any]) -> tuple[datetime, str]:
            return (_datetime(row.get("SystemModstamp")) or _EPOCH, str(row.get("Id")))

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
                self._raise_for(response.status, self._error_body(response), f"GET {path}")
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
            f"{BASE}/sobjects/{obj}/deleted/?start={quote(_iso(start))}&end={quote(_iso(now))}",
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

    # ---------------------------------------------------------------- reads

    async def _accounts_with_emails(
        self, account_where: str, contact_where: str, tail: str = ""
    ) -> list[Customer]:
        """Accounts and their billing contacts' emails, in one composite call."""
        contacts = _select(
            ("AccountId", "Email"),
            "Contact",
            f"({contact_where}) AND Crosswalk_Key__c LIKE '%-billing'",
        )
        results = await self._composite(
            [
                {
                    "method": "GET",
                    "url": _query_url(_select(ACCOUNT_FIELDS, "Account", account_where, tail)),
                    "referenceId": "accounts",
                },
                {"method": "GET", "url": _query_url(contacts), "referenceId": "contacts"},
            ],
            all_or_none=False,
            what="query accounts",
        )
        accounts = await self._rest_of(self._check(*results[0], "query accounts"))
        emails = self._emails(await self._rest_of(self._check(*results[1], "query contacts")))
        return [self._customer(a, emails.get(a.get("Id", ""))) for a in accounts]

    async def _get_customers(self, ids: tuple[str, ...]) -> dict[str, Customer]:
        found: dict[str, Customer] = {}
        for chunk in _chunks(ids):
            listed = _in_list(chunk)
            for customer in await self._accounts_with_emails(
                f"Id IN {listed}", f"AccountId IN {listed}"
            ):
                for asked in chunk:  # answer under the id asked for (15 or 18 characters)
                    if customer.id == asked or customer.id[:15] == asked:
                        found[asked] = customer
        return found

    async def _find_customers(self, text: str, limit: int) -> tuple[Customer, ...]:
        limit = max(1, min(limit, 2000))
        pattern = soql_like(text)
        found = await self._accounts_with_emails(
            f"Name LIKE {pattern}", f"Account.Name LIKE {pattern}", f" ORDER BY Name LIMIT {limit}"
        )
        return tuple(found)

    async def _list_customers(self, cursor: str | None, limit: int) -> Page[Customer]:
        """Keyset paging on Id: stateless, unlike query locators that expire."""
        limit = max(1, min(limit, 2000))
        after = f"Id > {soql_quote(cursor)}" if cursor else "Id != null"
        accounts = await self._query(
            _select(ACCOUNT_FIELDS, "Account", after, f" ORDER BY Id LIMIT {limit}")
        )
        ids = [str(a["Id"]) for a in accounts if "Id" in a]
        emails: dict[str, str] = {}
        if ids:
            emails = self._emails(
                await self._query(
                    _select(
                        ("AccountId", "Email"),
                        "Contact",
                        f"AccountId IN {_in_list(ids)} AND Crosswalk_Key__c LIKE '%-billing'",
                    )
                )
            )
        items = tuple(self._customer(a, emails.get(str(a.get("Id")))) for a in accounts)
        return Page(items, ids[-1] if len(ids) == limit else None)

    async def _customer_by_xref(self, erp_bp: str) -> Customer | None:
        fields = ",".join(ACCOUNT_FIELDS)
        contacts = _select(
            ("AccountId", "Email"),
            "Contact",
            f"Crosswalk_Key__c = {soql_quote(erp_bp + '-billing')}",
        )
        results = await self._composite(
            [
                {
                    "method": "GET",
                    "url": f"{BASE}/sobjects/Account/ERP_Customer_Id__c/"
                    f"{quote(erp_bp, safe='')}?fields={fields}",
                    "referenceId": "account",
                },
                {"method": "GET", "url": _query_url(contacts), "referenceId": "contacts"},
            ],
            all_or_none=False,
            what=f"read account by ERP_Customer_Id__c {erp_bp}",
        )
        status, body = results[0]
        if status == 404:
            return None
        account = self._check(status, body, f"read account by ERP_Customer_Id__c {erp_bp}")
        emails = self._emails(await self._rest_of(self._check(*results[1], "query contacts")))
        return self._customer(account, emails.get(account.get("Id", "")))

    async def _get_opportunities(
        self, account_ids: tuple[str, ...]
    ) -> dict[str, tuple[Opportunity, ...]]:
        grouped: dict[str, list[Opportunity]] = {}
        for chunk in _chunks(account_ids):
            rows = await self._query(
                _select(
                    OPPORTUNITY_FIELDS,
                    "Opportunity",
                    f"AccountId IN {_in_list(chunk)}",
                    " ORDER BY CloseDate DESC, Id",
                )
            )
            for opp in map(self._opportunity, rows):
                for asked in chunk:
                    if opp.account_id == asked or opp.account_id[:15] == asked:
                        grouped.setdefault(asked, []).append(opp)
        return {k: tuple(v) for k, v in grouped.items()}

    async def _get_opportunity(self, opp_id: str) -> Opportunity:
        record = await self._call(
            "GET",
            f"{BASE}/sobjects/Opportunity/{quote(opp_id, safe='')}"
            f"?fields={','.join(OPPORTUNITY_FIELDS)}",
        )
        return self._opportunity(record)

    # ---------------------------------------------------------------- writes

    async def _ensure_customer(self, message: EnsureCustomer) -> Customer:
        customer = message.customer
        erp = customer.xref.erp
        if not erp:
            raise Rejected(
                self.system,
                "EnsureCustomer needs customer.xref.erp: the CRM upserts accounts by "
                "ERP_Customer_Id__c; create the ERP business partner first",
                details={"fields": ["ERP_Customer_Id__c"]},
            )
        fields = {
            CUSTOMER_FIELDS[name]: getattr(customer, name)
            for name in CUSTOMER_FIELDS
            if name != "billing_status" and getattr(customer, name) is not None
        }
        key = quote(erp, safe="")
        subrequests: list[dict[str, Any]] = [
            {
                "method": "PATCH",
                "url": f"{BASE}/sobjects/Account/ERP_Customer_Id__c/{key}",
                "referenceId": "account",
                "body": fields,
            }
        ]
        if customer.email:
            subrequests.append(
                {
                    "method": "PATCH",
                    "url": f"{BASE}/sobjects/Contact/Crosswalk_Key__c/{key}-billing",
                    "referenceId": "contact",
                    "body": {
                        "AccountId": "@{account.id}",
                        "FirstName": "Accounts",
                        "LastName": "Payable",
                        "Email": customer.email,
                    },
                }
            )
        subrequests.append(
            {
                "method": "GET",
                "url": f"{BASE}/sobjects/Account/@{{account.id}}?fields={','.join(ACCOUNT_FIELDS)}",
                "referenceId": "read",
            }
        )
        results = await self._composite(subrequests, all_or_none=True, what=f"upsert account {erp}")
        return self._customer(results[-1][1], customer.email)

    async def _update_customer(self, account_id: str, changes: dict[str, str | None]) -> Customer:
        unknown = sorted(set(changes) - set(CUSTOMER_FIELDS))
        if unknown:
            raise Rejected(
                self.system,
                f"UpdateCustomer cannot change {', '.join(unknown)} in the CRM; it can change "
                f"{', '.join(sorted(CUSTOMER_FIELDS))}",
                details={"fields": unknown},
            )
        path = f"{BASE}/sobjects/Account/{quote(account_id, safe='')}"
        subrequests: list[dict[str, Any]] = []
        body = {CUSTOMER_FIELDS[k]: v for k, v in changes.items()}
        if body:
            subrequests.append(
                {"method": "PATCH", "url": path, "referenceId": "update", "body": body}
            )
        subrequests.append(
            {
                "method": "GET",
                "url": f"{path}?fields={','.join(ACCOUNT_FIELDS)}",
                "referenceId": "read",
            }
        )
        contacts = _select(
            ("AccountId", "Email"),
            "Contact",
            f"AccountId = {soql_quote(account_id)} AND Crosswalk_Key__c LIKE '%-billing'",
        )
        subrequests.append(
            {"method": "GET", "url": _query_url(contacts), "referenceId": "contacts"}
        )
        results = await self._composite(
            subrequests, all_or_none=True, what=f"update account {account_id}"
        )
        read = results[-2][1]
        emails = self._emails(await self._rest_of(results[-1][1]))
        return self._customer(read, emails.get(read.get("Id", "")))

    async def _create_task(self, message: CreateTask) -> str:
        """Upsert by ``Crosswalk_Key__c``: Salesforce has no idempotency header, and the
        external id makes a redelivered task the same record."""
        body: dict[str, Any] = {
            "WhatId": message.account_id,
            "Subject": message.subject,
            "Priority": message.priority,
            "Status": message.status,
        }
        if message.due is not None:
            body["ActivityDate"] = message.due.isoformat()
        if message.description:
            body["Description"] = message.description
        key = quote(message.idempotency_key, safe="")
        path = f"{BASE}/sobjects/Task/Crosswalk_Key__c/{key}"
        created = await self._call("PATCH", path, json=body)
        if isinstance(created, dict) and created.get("id"):
            return str(created["id"])
        found = await self._call("GET", f"{path}?fields=Id")  # 204: it existed already
        return str(found["Id"])

    async def _update_opportunity(
        self, opp_id: str, fields: dict[str, str | bool | None]
    ) -> Opportunity:
        path = f"{BASE}/sobjects/Opportunity/{quote(opp_id, safe='')}"
        results = await self._composite(
            [
                {"method": "PATCH", "url": path, "referenceId": "update", "body": dict(fields)},
                {
                    "method": "GET",
                    "url": f"{path}?fields={','.join(OPPORTUNITY_FIELDS)}",
                    "referenceId": "read",
                },
            ],
            all_or_none=True,
            what=f"update opportunity {opp_id}",
        )
        return self._opportunity(results[1][1])
