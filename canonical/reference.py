"""Reference data as plain types: countries, payment terms, products, SLA rules.

``gateway.governance.reference`` loads ``policies/reference.toml`` into these; canonical
validation (``canonical.validation``) checks mutation input against them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from canonical.models import Product

__all__ = ["Country", "PaymentTerm", "ReferenceData", "SlaRule"]


@dataclass(frozen=True, slots=True)
class Country:
    """A country the gateway can onboard customers in."""

    code: str
    name: str
    currency: str
    tax_id: re.Pattern[str]
    tax_id_example: str
    legal_forms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PaymentTerm:
    key: str
    days: int
    description: str


@dataclass(frozen=True, slots=True)
class SlaRule:
    """Case priorities for one support tier (``none``: no active entitlement)."""

    tier: str
    open: str
    escalate: str


@dataclass(frozen=True, slots=True)
class ReferenceData:
    """Validated reference data; look-ups answer ``None`` for unknown keys."""

    file: str
    countries: Mapping[str, Country]
    payment_terms: Mapping[str, PaymentTerm]
    products: Mapping[str, Product]
    tiers: tuple[str, ...]
    sla: Mapping[str, SlaRule]

    def product_by_price(self, price: str) -> Product | None:
        return next((p for p in self.products.values() if p.price == price), None)

    def highest_tier(self, tiers: list[str | None]) -> str | None:
        """The highest of ``tiers`` in the order of ``sla.tiers`` (unknown tiers ignored)."""
        known = [t for t in tiers if t in self.tiers]
        return max(known, key=self.tiers.index) if known else None

    def sla_for(self, tier: str | None, *, entitled: bool) -> SlaRule:
        """The SLA rule for ``tier``, or the ``none`` rule without an active entitlement."""
        if entitled and tier is not None and tier in self.sla:
            return self.sla[tier]
        return self.sla["none"]
