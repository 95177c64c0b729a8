"""The CRM connector: Salesforce REST API v60.0 <-> the canonical model, message by message.

Reads are SOQL (``GET /query``) with every value escaped by ``soql_quote`` /
``soql_like``, following ``nextRecordsUrl`` until ``done``. Batched reads put up to
``CHUNK`` ids in one ``IN (...)`` list. A customer's email is its billing contact's
(``Contact.Crosswalk_Key__c = '<erp bp>-billing'``): the account and contact queries
travel together in one ``/composite`` call. The change feeds' initial load of an object
holding more than ``BULK_ABOVE`` records reads it through a Bulk API 2.0 query job
(``/jobs/query``, CSV results read by ``actors.crm.bulk``; see ``_changes``).

Writes: ``EnsureCustomer`` upserts the account by the external id ``ERP_Customer_Id__c``
(``customer.xref.erp``) and the billing contact by ``Crosswalk_Key__c``, then reads the
account back, all in one ``allOrNone`` composite call; sending it twice has one effect,
which is how Salesforce makes a write idempotent (it has no idempotency-key header, so
``idempotency_key`` is not sent). ``UpdateCustomer`` / ``UpdateOpportunity`` PATCH and
read back in one composite call. Every call sends ``Sforce-Call-Options:
client=<endpoint.client_name>`` so change events of our own writes can be recognised.

The vendor's error table is ``actors.crm.errors``; records and SOQL are mapped in
``actors.crm.mapping``; calls, paging and bulk jobs are ``actors.crm.paging``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from actors.crm.mapping import (
    ACCOUNT_FIELDS,
    BASE,
    BILLING_CONTACTS,
    CUSTOMER_FIELDS,
    FEED_FIELDS,
    OPPORTUNITY_FIELDS,
    billing_emails,
    chunks,
    in_list,
    query_url,
    select,
    soql_datetime,
    soql_like,
    soql_quote,
    soql_time,
    to_customer,
    to_opportunity,
)
from actors.crm.paging import SalesforcePaging
from actors.errors import Rejected
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
from canonical import Customer, Opportunity, System

__all__ = ["CrmConnector"]


class CrmConnector(SalesforcePaging):
    """Salesforce (the CRM) behind the connector contract; see the module docstring."""

    system = System.CRM

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
            since = soql_datetime(cursor.removeprefix("ts:")) if cursor.startswith("ts:") else None
            if since is None:
                raise Rejected(self.system, f"cursor {cursor!r} was not made by this connector")
        now = datetime.now(UTC)
        records: list[ChangedRecord] = []
        if since is None and await self._count(obj) > self.bulk_above:
            rows = await self._bulk_listing(obj)
            if obj == "Account":
                emails = billing_emails(await self._bulk_query(BILLING_CONTACTS))
                for row in rows:
                    customer = to_customer(row, emails.get(str(row.get("Id"))))
                    records.append(ChangedRecord("customer", customer.id, customer.id, customer))
        else:
            where = "Id != null" if since is None else f"SystemModstamp >= {soql_time(since)}"
            fields = ("Id", "SystemModstamp") if obj == "Account" else FEED_FIELDS[obj]
            rows = await self._query(select(fields, obj, where, " ORDER BY SystemModstamp, Id"))
            if obj == "Account":
                ids = tuple(str(row["Id"]) for row in rows if row.get("Id"))
                found = await self._get_customers(ids) if ids else {}
                records.extend(ChangedRecord("customer", i, i, c) for i, c in found.items())
        newest = since
        for row in rows:
            stamp = soql_datetime(row.get("SystemModstamp"))
            if stamp is not None and (newest is None or stamp > newest):
                newest = stamp
        if obj == "Opportunity":
            for opp in map(to_opportunity, rows):
                records.append(ChangedRecord("opportunity", opp.id, opp.account_id, opp))
        if since is not None:
            records.extend(await self._deleted(obj, since, now))
        if newest is None:
            newest = now
        return ChangePage(tuple(records), f"ts:{newest.isoformat()}", False)

    # ---------------------------------------------------------------- reads

    async def _accounts_with_emails(
        self, account_where: str, contact_where: str, tail: str = ""
    ) -> list[Customer]:
        """Accounts and their billing contacts' emails, in one composite call."""
        contacts = select(
            ("AccountId", "Email"),
            "Contact",
            f"({contact_where}) AND Crosswalk_Key__c LIKE '%-billing'",
        )
        results = await self._composite(
            [
                {
                    "method": "GET",
                    "url": query_url(select(ACCOUNT_FIELDS, "Account", account_where, tail)),
                    "referenceId": "accounts",
                },
                {"method": "GET", "url": query_url(contacts), "referenceId": "contacts"},
            ],
            all_or_none=False,
            what="query accounts",
        )
        accounts = await self._rest_of(self._check(*results[0], "query accounts"))
        emails = billing_emails(await self._rest_of(self._check(*results[1], "query contacts")))
        return [to_customer(a, emails.get(a.get("Id", ""))) for a in accounts]

    async def _get_customers(self, ids: tuple[str, ...]) -> dict[str, Customer]:
        found: dict[str, Customer] = {}
        for chunk in chunks(ids):
            listed = in_list(chunk)
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
            select(ACCOUNT_FIELDS, "Account", after, f" ORDER BY Id LIMIT {limit}")
        )
        ids = [str(a["Id"]) for a in accounts if "Id" in a]
        emails: dict[str, str] = {}
        if ids:
            emails = billing_emails(
                await self._query(
                    select(
                        ("AccountId", "Email"),
                        "Contact",
                        f"AccountId IN {in_list(ids)} AND Crosswalk_Key__c LIKE '%-billing'",
                    )
                )
            )
        items = tuple(to_customer(a, emails.get(str(a.get("Id")))) for a in accounts)
        return Page(items, ids[-1] if len(ids) == limit else None)

    async def _customer_by_xref(self, erp_bp: str) -> Customer | None:
        fields = ",".join(ACCOUNT_FIELDS)
        contacts = select(
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
                {"method": "GET", "url": query_url(contacts), "referenceId": "contacts"},
            ],
            all_or_none=False,
            what=f"read account by ERP_Customer_Id__c {erp_bp}",
        )
        status, body = results[0]
        if status == 404:
            return None
        account = self._check(status, body, f"read account by ERP_Customer_Id__c {erp_bp}")
        emails = billing_emails(await self._rest_of(self._check(*results[1], "query contacts")))
        return to_customer(account, emails.get(account.get("Id", "")))

    async def _get_opportunities(
        self, account_ids: tuple[str, ...]
    ) -> dict[str, tuple[Opportunity, ...]]:
        grouped: dict[str, list[Opportunity]] = {}
        for chunk in chunks(account_ids):
            rows = await self._query(
                select(
                    OPPORTUNITY_FIELDS,
                    "Opportunity",
                    f"AccountId IN {in_list(chunk)}",
                    " ORDER BY CloseDate DESC, Id",
                )
            )
            for opp in map(to_opportunity, rows):
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
        return to_opportunity(record)

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
        return to_customer(results[-1][1], customer.email)

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
        contacts = select(
            ("AccountId", "Email"),
            "Contact",
            f"AccountId = {soql_quote(account_id)} AND Crosswalk_Key__c LIKE '%-billing'",
        )
        subrequests.append({"method": "GET", "url": query_url(contacts), "referenceId": "contacts"})
        results = await self._composite(
            subrequests, all_or_none=True, what=f"update account {account_id}"
        )
        read = results[-2][1]
        emails = billing_emails(await self._rest_of(results[-1][1]))
        return to_customer(read, emails.get(read.get("Id", "")))

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
        return to_opportunity(results[1][1])
