"""The CRM's wire mapping: Salesforce records and SOQL <-> the canonical model.

Accounts are customers (their email is the billing contact's, ``Contact.Crosswalk_Key__c
= '<erp bp>-billing'``); opportunities are opportunities. Every value put into SOQL is
escaped by ``soql_quote`` / ``soql_like``; ``select``, ``in_list`` (at most ``CHUNK`` ids
per list, ``chunks``) and ``query_url`` build the queries. ``to_customer`` and
``to_opportunity`` read one record (an unreadable one is a ``MalformedResponse``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from actors.crm.bulk import FieldType
from actors.errors import MalformedResponse
from canonical import Customer, Opportunity, System, XRef

__all__ = [
    "ACCOUNT_FIELDS",
    "BASE",
    "BILLING_CONTACTS",
    "CHUNK",
    "CUSTOMER_FIELDS",
    "EPOCH",
    "FEED_FIELDS",
    "FIELD_TYPES",
    "OPPORTUNITY_FIELDS",
    "billing_emails",
    "chunks",
    "in_list",
    "iso",
    "query_url",
    "select",
    "soql_datetime",
    "soql_like",
    "soql_quote",
    "soql_time",
    "to_customer",
    "to_opportunity",
]

BASE = "/services/data/v60.0"
#: ids per ``IN (...)`` list: keeps the query well under Salesforce's URL length limits
CHUNK = 200
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
FEED_FIELDS = {
    "Account": (*ACCOUNT_FIELDS, "SystemModstamp"),
    "Opportunity": (*OPPORTUNITY_FIELDS, "SystemModstamp"),
}
BILLING_CONTACTS = "SELECT AccountId, Email FROM Contact WHERE Crosswalk_Key__c LIKE '%-billing'"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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


def in_list(values: Iterable[str]) -> str:
    return "(" + ", ".join(soql_quote(v) for v in values) + ")"


def chunks(values: tuple[str, ...]) -> Iterable[tuple[str, ...]]:
    unique = tuple(dict.fromkeys(values))
    for start in range(0, len(unique), CHUNK):
        yield unique[start : start + CHUNK]


def soql_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    # fromisoformat reads Salesforce's 2024-05-01T10:20:30.000+0000 in C (strptime is
    # pure Python and several times slower); a time without an offset is not Salesforce's
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def soql_time(moment: datetime) -> str:
    """A SOQL datetime literal (UTC, whole seconds: ``>=`` reads the second again)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def select(fields: tuple[str, ...], obj: str, where: str, tail: str = "") -> str:
    return f"SELECT {', '.join(fields)} FROM {obj} WHERE {where}{tail}"


def query_url(soql: str) -> str:
    return f"{BASE}/query?q={quote(soql, safe='')}"


def to_customer(record: dict[str, Any], email: str | None) -> Customer:
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
            updated_at=soql_datetime(record.get("LastModifiedDate")),
        )
    except (KeyError, TypeError) as exc:
        raise MalformedResponse(System.CRM, f"Account record without {exc}") from exc


def to_opportunity(record: dict[str, Any]) -> Opportunity:
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
            updated_at=soql_datetime(record.get("LastModifiedDate")),
        )
    except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
        raise MalformedResponse(System.CRM, f"Opportunity record unreadable: {exc}") from exc


def billing_emails(contacts: list[dict[str, Any]]) -> dict[str, str]:
    emails: dict[str, str] = {}
    for row in contacts:
        account, email = row.get("AccountId"), row.get("Email")
        if isinstance(account, str) and isinstance(email, str):
            emails.setdefault(account, email)
    return emails
