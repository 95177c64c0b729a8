"""The CRM sandbox's data model: three SObjects, their fields, and the record rules.

Fields follow a Salesforce org with a few custom fields (``__c``) that Crosswalk links
and stamps by. The owner is a plain text field, ``Owner_Name__c``: the sandbox has no
User object, so ``OwnerId`` is not modelled. ``Segment__c`` carries the customer
segment (``Type`` keeps its standard meaning: Customer, Prospect, Partner).

Writes are checked here before they touch the store: unknown field -> ``INVALID_FIELD``,
read-only field -> ``INVALID_FIELD_FOR_INSERT_UPDATE``, wrong JSON type or bad date ->
``INVALID_TYPE_ON_FIELD_IN_RECORD``, missing required field -> ``REQUIRED_FIELD_MISSING``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

__all__ = [
    "API_VERSION",
    "BASE",
    "OBJECTS",
    "STAGES",
    "FieldDef",
    "ObjectDef",
    "SalesforceError",
    "derive",
    "format_datetime",
    "object_def",
    "validate_write",
]

API_VERSION = "60.0"
BASE = f"/services/data/v{API_VERSION}"

#: StageName -> (IsClosed, IsWon), as in a standard org's sales process
STAGES: dict[str, tuple[bool, bool]] = {
    "Prospecting": (False, False),
    "Qualification": (False, False),
    "Needs Analysis": (False, False),
    "Value Proposition": (False, False),
    "Id. Decision Makers": (False, False),
    "Perception Analysis": (False, False),
    "Proposal/Price Quote": (False, False),
    "Negotiation/Review": (False, False),
    "Closed Won": (True, True),
    "Closed Lost": (True, False),
}


class SalesforceError(Exception):
    """A vendor-style error: answered as ``[{"message","errorCode","fields"}]``."""

    def __init__(
        self, status: int, code: str, message: str, fields: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []

    def body(self) -> list[dict[str, Any]]:
        return [{"message": self.message, "errorCode": self.code, "fields": self.fields}]


@dataclass(frozen=True, slots=True)
class FieldDef:
    name: str
    type: str  # id | string | picklist | email | reference | currency | date | datetime | boolean
    label: str = ""
    writable: bool = True
    required: bool = False
    external_id: bool = False
    unique: bool = False
    length: int = 255
    reference_to: str | None = None  # for type "reference"
    relationship: str | None = None  # "Account" for AccountId


@dataclass(frozen=True, slots=True)
class ObjectDef:
    name: str
    prefix: str
    fields: dict[str, FieldDef] = field(default_factory=dict)

    def field_named(self, name: str) -> FieldDef | None:
        """Field names are case-insensitive in Salesforce."""
        found = self.fields.get(name)
        if found is not None:
            return found
        lowered = name.lower()
        return next((f for f in self.fields.values() if f.name.lower() == lowered), None)

    def relationship_named(self, name: str) -> FieldDef | None:
        lowered = name.lower()
        return next(
            (
                f
                for f in self.fields.values()
                if f.relationship and f.relationship.lower() == lowered
            ),
            None,
        )


def _obj(name: str, prefix: str, *defs: FieldDef) -> ObjectDef:
    system = (
        FieldDef("Id", "id", "Record ID", writable=False, length=18),
        FieldDef("CreatedDate", "datetime", "Created Date", writable=False),
        FieldDef("LastModifiedDate", "datetime", "Last Modified Date", writable=False),
        FieldDef("SystemModstamp", "datetime", "System Modstamp", writable=False),
    )
    return ObjectDef(name, prefix, {f.name: f for f in (system[0], *defs, *system[1:])})


_ACCOUNT_REF = {"reference_to": "Account", "relationship": "Account"}

OBJECTS: dict[str, ObjectDef] = {
    o.name: o
    for o in (
        _obj(
            "Account",
            "001",
            FieldDef("Name", "string", "Account Name", required=True),
            FieldDef(
                "ERP_Customer_Id__c",
                "string",
                "ERP Customer Id",
                external_id=True,
                unique=True,
                length=40,
            ),
            FieldDef("Industry", "picklist", "Industry", length=40),
            FieldDef("Type", "picklist", "Account Type", length=40),
            FieldDef("Segment__c", "picklist", "Segment", length=40),
            FieldDef("Owner_Name__c", "string", "Owner Name", length=121),
            FieldDef("BillingCity", "string", "Billing City", length=40),
            FieldDef("BillingCountry", "string", "Billing Country", length=80),
            FieldDef("CurrencyIsoCode", "picklist", "Account Currency", length=3),
            FieldDef("Payment_Terms__c", "picklist", "Payment Terms", length=10),
            FieldDef("Tax_Id__c", "string", "Tax Id", length=40),
            FieldDef("Billing_Status__c", "picklist", "Billing Status", length=40),
        ),
        _obj(
            "Contact",
            "003",
            FieldDef("AccountId", "reference", "Account ID", **_ACCOUNT_REF),  # type: ignore[arg-type]
            FieldDef("FirstName", "string", "First Name", length=40),
            FieldDef("LastName", "string", "Last Name", required=True, length=80),
            FieldDef("Email", "email", "Email", length=80),
            FieldDef(
                "Crosswalk_Key__c",
                "string",
                "Crosswalk Key",
                external_id=True,
                unique=True,
                length=80,
            ),
        ),
        _obj(
            "Opportunity",
            "006",
            FieldDef("AccountId", "reference", "Account ID", **_ACCOUNT_REF),  # type: ignore[arg-type]
            FieldDef("Name", "string", "Name", required=True, length=120),
            FieldDef("StageName", "picklist", "Stage", required=True, length=40),
            FieldDef("Amount", "currency", "Amount"),
            FieldDef("CurrencyIsoCode", "picklist", "Opportunity Currency", length=3),
            FieldDef("CloseDate", "date", "Close Date", required=True),
            FieldDef("IsClosed", "boolean", "Closed", writable=False),
            FieldDef("IsWon", "boolean", "Won", writable=False),
            FieldDef("ERP_Order_Number__c", "string", "ERP Order Number", length=20),
            FieldDef("Products__c", "string", "Products", length=255),
        ),
        _obj(
            "Task",
            "00T",
            # WhatId is polymorphic in Salesforce; here it relates activities to accounts
            FieldDef(
                "WhatId", "reference", "Related To ID", reference_to="Account", relationship="What"
            ),
            FieldDef("Subject", "string", "Subject", required=True, length=255),
            FieldDef("Status", "picklist", "Status", required=True, length=40),
            FieldDef("Priority", "picklist", "Priority", required=True, length=40),
            FieldDef("ActivityDate", "date", "Due Date Only"),
            FieldDef("Description", "string", "Comments", length=32000),
            FieldDef(
                "Crosswalk_Key__c",
                "string",
                "Crosswalk Key",
                external_id=True,
                unique=True,
                length=80,
            ),
        ),
    )
}

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def object_def(name: str) -> ObjectDef:
    """The object named ``name`` (case-insensitive), or 404 NOT_FOUND like the real API."""
    found = OBJECTS.get(name) or next(
        (o for o in OBJECTS.values() if o.name.lower() == name.lower()), None
    )
    if found is None:
        raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
    return found


def format_datetime(moment: datetime) -> str:
    """Salesforce's JSON datetime: ``2026-11-01T09:00:00.000+0000``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _check_value(obj: ObjectDef, fdef: FieldDef, value: Any) -> Any:
    """The value to store, or INVALID_TYPE_ON_FIELD_IN_RECORD naming the field."""

    def bad(reason: str) -> SalesforceError:
        return SalesforceError(
            400,
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            f"{fdef.label or fdef.name}: {reason}",
            [fdef.name],
        )

    if value is None:
        return None
    match fdef.type:
        case "string" | "picklist" | "email" | "reference":
            if not isinstance(value, str):
                raise bad(f"value not of required type: {value!r}")
            if len(value) > fdef.length:
                raise SalesforceError(
                    400,
                    "STRING_TOO_LONG",
                    f"{fdef.label}: data value too large: {value[:40]}... "
                    f"(max length={fdef.length})",
                    [fdef.name],
                )
            if fdef.type == "email" and value and not _EMAIL.match(value):
                raise SalesforceError(
                    400,
                    "INVALID_EMAIL_ADDRESS",
                    f"Email: invalid email address: {value}",
                    [fdef.name],
                )
            if fdef.name == "StageName" and value not in STAGES:
                raise SalesforceError(
                    400,
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"Stage: bad value for restricted picklist field: {value}",
                    [fdef.name],
                )
            if fdef.type == "reference" and not (len(value) in (15, 18) and value.isalnum()):
                raise SalesforceError(
                    400,
                    "MALFORMED_ID",
                    f"{fdef.label}: id value of incorrect type: {value}",
                    [fdef.name],
                )
            return value if value != "" else None
        case "currency":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bad(f"value not of required type: {value!r}")
            return round(float(value), 2)
        case "date":
            if not isinstance(value, str) or not _DATE.match(value):
                raise bad(f"value not of required type: {value!r}")
            try:
                date.fromisoformat(value)
            except ValueError as exc:
                raise bad(f"invalid date: {value}") from exc
            return value
        case _:
            raise bad("field is not writable")


def validate_write(
    obj: ObjectDef, body: object, *, creating: bool, current: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Check a create/update body; answer the changes to apply, keyed by canonical names."""
    if not isinstance(body, dict):
        raise SalesforceError(
            400,
            "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of {obj.name} from a JSON "
            f"{type(body).__name__}: send a JSON object of field names and values",
        )
    changes: dict[str, Any] = {}
    readonly: list[str] = []
    for key, value in body.items():
        if key == "attributes":
            continue  # clients echo the attributes block back; Salesforce ignores it
        fdef = obj.field_named(str(key))
        if fdef is None:
            raise SalesforceError(
                400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}", [key]
            )
        if not fdef.writable:
            readonly.append(fdef.name)
            continue
        changes[fdef.name] = _check_value(obj, fdef, value)
    if readonly:
        raise SalesforceError(
            400,
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            f"Unable to create/update fields: {', '.join(readonly)}. Please check the security "
            "settings of this field and verify that it is read/write for your profile.",
            readonly,
        )
    merged = {**(current or {}), **changes}
    missing = [
        f.name for f in obj.fields.values() if f.required and merged.get(f.name) in (None, "")
    ]
    if missing and (creating or any(name in changes for name in missing)):
        raise SalesforceError(
            400,
            "REQUIRED_FIELD_MISSING",
            f"Required fields are missing: [{', '.join(missing)}]",
            missing,
        )
    return changes


def derive(obj: ObjectDef, record: dict[str, Any]) -> None:
    """Fill the formula-like fields a record's other fields decide (IsClosed, IsWon)."""
    if obj.name == "Opportunity":
        closed, won = STAGES.get(record.get("StageName") or "", (False, False))
        record["IsClosed"] = closed
        record["IsWon"] = won
