"""Customer ids as clients write them, resolved through the cross-reference registry.

``customer(id:)`` takes the canonical id (``cw_...``) or a system id written
``erp:<BusinessPartner>``, ``billing:<cus_...>``, ``crm:<001...>``, ``support:<org id>``.
Ids are checked against each system's id shape first, so a bogus id (``crm:'; DROP``)
is refused with VALIDATION_FAILED before any store or upstream call. A system id the
registry does not know yet is looked up in that system; if it exists, it and the
cross-references its record carries are linked in the registry, so the next request
resolves it locally.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from gateway.canonical import Customer, System
from gateway.graphql.context import Context
from gateway.graphql.errors import CodedError, ErrorCode
from gateway.processes.discovery import customer_links
from gateway.store.errors import XRefConflict
from gateway.store.records import XRefRecord

__all__ = ["ID_SHAPES", "parse_customer_id", "resolve_customer"]

CANONICAL_SHAPE = re.compile(r"^cw_[0-9a-z]{1,64}$")
ID_SHAPES: Mapping[System, re.Pattern[str]] = MappingProxyType(
    {
        System.ERP: re.compile(r"^[0-9A-Z]{1,10}$"),
        System.BILLING: re.compile(r"^cus_[0-9A-Za-z]{1,64}$"),
        System.CRM: re.compile(r"^[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?$"),
        System.SUPPORT: re.compile(r"^[0-9]{1,20}$"),
    }
)


def parse_customer_id(raw: str) -> tuple[System | None, str]:
    """Split ``erp:1000042`` into (ERP, ``1000042``); a canonical id gives (None, id)."""
    prefix, colon, native = raw.partition(":")
    if not colon:
        if CANONICAL_SHAPE.match(raw):
            return None, raw
        raise CodedError(
            ErrorCode.VALIDATION_FAILED,
            f"{raw[:64]!r} is not a customer id: use the canonical id (cw_...) or "
            "erp:<id>, billing:<cus_...>, crm:<001...>, support:<id>.",
            extensions={"argument": "id"},
        )
    try:
        system = System(prefix.lower())
    except ValueError:
        raise CodedError(
            ErrorCode.VALIDATION_FAILED,
            f"Unknown system prefix {prefix[:16]!r}; use erp:, billing:, crm: or support:.",
            extensions={"argument": "id"},
        ) from None
    if not ID_SHAPES[system].match(native):
        raise CodedError(
            ErrorCode.VALIDATION_FAILED,
            f"{native[:64]!r} is not a valid {system} id.",
            system=str(system),
            extensions={"argument": "id"},
        )
    return system, native


def _links(customer: Customer) -> dict[System, str]:
    return {s: v for s, v in customer_links(customer).items() if ID_SHAPES[s].match(v)}


async def resolve_customer(context: Context, raw: str) -> XRefRecord:
    """The registry record for ``raw``; NOT_FOUND if no system knows it."""
    system, native = parse_customer_id(raw)
    store = context.runtime.store
    if system is None:
        record: XRefRecord | None = await store.get_xref(native)
        if record is None:
            raise CodedError(ErrorCode.NOT_FOUND, f"No customer {native}.")
        return record
    canonical = await store.resolve(system, native)
    if canonical is not None:
        record = await store.get_xref(canonical)
        if record is not None:
            return record
    fetched = await context.loaders.customers[system].load(native)
    customer = fetched.value_or_raise()
    if customer is None:
        raise CodedError(
            ErrorCode.NOT_FOUND, f"No customer {native} in {system}.", system=str(system)
        )
    try:
        linked: XRefRecord = await store.link(_links(customer), name=customer.name)
    except XRefConflict:
        # the record's cross-references contradict the registry: link only what was asked
        linked = await store.link({system: native}, name=customer.name)
    return linked
