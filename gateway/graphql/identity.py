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
import time
from collections.abc import Mapping
from types import MappingProxyType

from canonical import Customer, System
from gateway.graphql.context import Context
from gateway.graphql.errors import CodedError, ErrorCode
from gateway.processes.discovery import customer_links
from gateway.store.errors import XRefConflict
from gateway.store.records import XRefRecord

__all__ = ["ID_SHAPES", "XRefCache", "parse_customer_id", "resolve_customer"]

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


class XRefCache:
    """Recently resolved ids -> registry records, for ``ttl`` seconds (bounded).

    A portal asks for the same customers again and again; the registry changes only when
    a customer is linked or merged, and a few seconds' delay in seeing that is harmless,
    while a store round trip per request is not free.
    """

    def __init__(self, *, ttl: float = 5.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[str, tuple[float, XRefRecord]] = {}

    def get(self, key: str) -> XRefRecord | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if time.monotonic() - entry[0] > self.ttl:
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: str, record: XRefRecord) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()  # simpler than LRU, and rare: the size is generous
        self._entries[key] = (time.monotonic(), record)


async def resolve_customer(context: Context, raw: str) -> XRefRecord:
    """The registry record for ``raw``; NOT_FOUND if no system knows it."""
    system, native = parse_customer_id(raw)
    cache: XRefCache | None = context.extras.get("xref_cache")
    if cache is not None:
        cached = cache.get(raw)
        if cached is not None:
            return cached
    record = await _resolve(context, system, native)
    if cache is not None:
        cache.put(raw, record)
    return record


async def _resolve(context: Context, system: System | None, native: str) -> XRefRecord:
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
    fetched = await context.loaders.customers(system).load(native)
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
