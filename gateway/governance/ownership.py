"""Field ownership from ``policies/ownership.toml``: which system owns each customer field.

::

    [customer]
    legal_name = "erp"      # canonical Customer field = owning system
    segment = "crm"
    ...
    [fallback]
    order = ["erp", "crm", "billing", "support"]   # who may fill a field its owner lacks

Every field of ``canonical.Customer`` that carries business data must have an
owner (``system``, ``id`` and ``xref`` are bookkeeping and ``updated_at`` is per record).
Any problem raises ``PolicyError(file, key, reason)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from canonical import Customer, System
from gateway.governance._toml import read_policy

__all__ = ["OWNED_CUSTOMER_FIELDS", "OwnershipPolicy", "load_ownership_policy"]

#: the Customer fields that have an owner
OWNED_CUSTOMER_FIELDS: tuple[str, ...] = tuple(
    f.name
    for f in dataclasses.fields(Customer)
    if f.name not in {"system", "id", "xref", "updated_at"}
)

_DEFAULT_OWNERS: Mapping[str, System] = {
    "name": System.ERP,
    "legal_name": System.ERP,
    "tax_id": System.ERP,
    "country": System.ERP,
    "payment_terms": System.ERP,
    "credit_status": System.ERP,
    "currency": System.BILLING,
    "email": System.BILLING,
    "segment": System.CRM,
    "industry": System.CRM,
    "owner": System.CRM,
    "support_tier": System.SUPPORT,
}


@dataclass(frozen=True, slots=True)
class OwnershipPolicy:
    """The owner of each customer field, and who may fill a field its owner lacks."""

    customer: Mapping[str, System] = dataclasses.field(
        default_factory=lambda: MappingProxyType(dict(_DEFAULT_OWNERS))
    )
    fallback: tuple[System, ...] = (System.ERP, System.CRM, System.BILLING, System.SUPPORT)

    def owner(self, field: str) -> System:
        """The system that owns a canonical customer field (``KeyError`` if unknown)."""
        return self.customer[field]

    def owned_by(self, system: System) -> frozenset[str]:
        """The customer fields ``system`` is the source of truth for."""
        return frozenset(f for f, s in self.customer.items() if s is system)

    def sources(self, field: str) -> tuple[System, ...]:
        """Where to look for ``field``: its owner first, then the fallback order."""
        owner = self.customer[field]
        return (owner, *(s for s in self.fallback if s is not owner))


def load_ownership_policy(path: Path | str) -> OwnershipPolicy:
    """Read and validate ``policies/ownership.toml``; raise ``PolicyError`` on any problem."""
    data = read_policy(path, if_missing="it names the owner of each field")
    data.only({"customer", "fallback"})
    table = data.table("customer")
    owners: dict[str, System] = {}
    for name in table:
        if name not in OWNED_CUSTOMER_FIELDS:
            raise table.fail(
                name, f"not a canonical customer field; known: {', '.join(OWNED_CUSTOMER_FIELDS)}"
            )
        owners[name] = table.member(name, System)
    missing = [f for f in OWNED_CUSTOMER_FIELDS if f not in owners]
    if missing:
        raise data.fail("customer", f"no owner for {', '.join(missing)}")
    fallback_table = data.table("fallback", required=False)
    fallback_table.only({"order"})
    every: list[System] = list(System)
    fallback = tuple(fallback_table.members("order", System, default=every))
    if len(set(fallback)) != len(fallback):
        raise fallback_table.fail("order", "names a system twice")
    return OwnershipPolicy(customer=MappingProxyType(owners), fallback=fallback)
