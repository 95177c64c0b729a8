"""Canonical validation rules: what a governed mutation must satisfy before anything is written.

Each check appends ``FieldProblem(field, reason)`` to a ``Problems`` list instead of
raising, so one answer names every invalid field (``VALIDATION_FAILED`` with
``extensions.fields``). Field names are the mutation input's own paths (``taxId``,
``lines[1].product``), so a widget can put each message next to the right input.

The rules read reference data (``policies/reference.toml``) and the field ownership
policy; they never call a back-office system (the process layer checks existence, such
as "this opportunity is still open", with reads of its own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from canonical.reference import ReferenceData

__all__ = [
    "DEFAULT_OWNERS",
    "FieldProblem",
    "Problems",
    "check_country",
    "check_currency",
    "check_legal_entity",
    "check_owned",
    "check_payment_terms",
    "check_product",
    "check_quantity",
    "check_required",
    "check_tax_id",
]

#: field -> owning system, used when ``policies/ownership.toml`` gives no answer (by design:
#: legal data and terms from the ERP, sales data from the CRM, entitlements from support)
DEFAULT_OWNERS: Mapping[str, str] = {
    "legal_name": "erp",
    "tax_id": "erp",
    "country": "erp",
    "payment_terms": "erp",
    "credit_status": "erp",
    "currency": "erp",
    "segment": "crm",
    "owner": "crm",
    "industry": "crm",
    "email": "billing",
    "support_tier": "support",
}


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One invalid input field: its path in the mutation input and why it was refused."""

    field: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


@dataclass(slots=True)
class Problems:
    """The problems found so far; empty means valid."""

    items: list[FieldProblem] = field(default_factory=list)

    def add(self, field_name: str, reason: str) -> None:
        self.items.append(FieldProblem(field_name, reason))

    def __bool__(self) -> bool:
        return bool(self.items)

    def has(self, field_name: str) -> bool:
        return any(p.field == field_name for p in self.items)


def check_required(
    problems: Problems, field_name: str, value: object, *, max_len: int = 200
) -> bool:
    """A non-blank string of at most ``max_len`` characters; True if it is."""
    if not isinstance(value, str) or not value.strip():
        problems.add(field_name, "is required")
        return False
    if len(value) > max_len:
        problems.add(field_name, f"must be at most {max_len} characters, got {len(value)}")
        return False
    return True


def check_country(problems: Problems, field_name: str, country: str, ref: ReferenceData) -> bool:
    if country not in ref.countries:
        known = ", ".join(sorted(ref.countries))
        problems.add(field_name, f"unknown country {country!r}; expected one of {known}")
        return False
    return True


def check_tax_id(
    problems: Problems, field_name: str, tax_id: str, country: str, ref: ReferenceData
) -> None:
    """The tax id matches its country's format (spaces and dots are ignored)."""
    entry = ref.countries.get(country)
    if entry is None:
        return  # the country itself is reported
    compact = tax_id.replace(" ", "").replace(".", "").upper()
    if not entry.tax_id.fullmatch(compact):
        problems.add(
            field_name,
            f"{tax_id!r} is not a valid {entry.name} tax id (expected the form "
            f"{entry.tax_id_example})",
        )


def check_legal_entity(
    problems: Problems, field_name: str, legal_name: str, country: str, ref: ReferenceData
) -> None:
    """A legal entity's name ends with one of its country's legal forms (``GmbH``, ``Inc.``)."""
    entry = ref.countries.get(country)
    if entry is None:
        return
    if not any(legal_name.rstrip().endswith(" " + form) for form in entry.legal_forms):
        forms = ", ".join(entry.legal_forms)
        problems.add(
            field_name,
            f"{legal_name!r} names no legal form of {entry.name}; end it with one of {forms}",
        )


def check_payment_terms(problems: Problems, field_name: str, key: str, ref: ReferenceData) -> None:
    if key not in ref.payment_terms:
        known = ", ".join(sorted(ref.payment_terms))
        problems.add(field_name, f"unknown payment terms {key!r}; expected one of {known}")


def check_currency(
    problems: Problems, field_name: str, currency: str, country: str, ref: ReferenceData
) -> None:
    """The currency is the country's own (the ERP's company codes bill in local currency)."""
    entry = ref.countries.get(country)
    if entry is not None and currency != entry.currency:
        problems.add(
            field_name, f"{entry.name} customers are billed in {entry.currency}, not {currency}"
        )


def check_product(problems: Problems, field_name: str, code: str, ref: ReferenceData) -> bool:
    if code not in ref.products:
        known = ", ".join(sorted(ref.products))
        problems.add(field_name, f"unknown product {code!r}; expected one of {known}")
        return False
    return True


def check_quantity(problems: Problems, field_name: str, quantity: int | Decimal) -> None:
    if quantity <= 0 or quantity > 10_000:
        problems.add(field_name, f"must be between 1 and 10000, got {quantity}")


def check_owned(
    problems: Problems,
    writes: Iterable[tuple[str, str]],
    caller: str | None,
    owner_of: Callable[[str], str | None],
) -> None:
    """Each ``(input field, canonical field)`` written must be owned by the caller's system.

    The ownership policy says which system is the source of truth for a field; a client
    speaking for another system may not change it (the owner's next sync would undo it).
    An operator client (``caller`` None: it speaks for no system) is not limited.
    """
    if caller is None:
        return
    for input_field, canonical_field in writes:
        owner = owner_of(canonical_field) or DEFAULT_OWNERS.get(canonical_field)
        if owner is not None and owner != caller:
            problems.add(
                input_field,
                f"{canonical_field} is owned by {owner} (policies/ownership.toml); "
                f"a {caller} client may not write it: change it in {owner}",
            )
