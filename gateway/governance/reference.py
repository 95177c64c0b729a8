"""Reference data from ``policies/reference.toml``: countries, payment terms, products, SLAs.

Canonical validation (``gateway.canonical.validation``) checks mutation input against it:
tax id format per country, legal form of a legal entity, payment terms keys, product
codes (and their ERP material and billing price), and the case priority a support tier
gets. Every key is checked and unknown keys are refused; a problem raises
``PolicyError(file, key, reason)``, e.g.
``policies/reference.toml: countries.DE.tax_id: not a valid regular expression``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType

from gateway.canonical import Product
from gateway.governance._toml import PolicyTable, read_policy

__all__ = ["Country", "PaymentTerm", "ReferenceData", "SlaRule", "load_reference"]

_PRIORITIES = ("low", "normal", "high", "urgent")
_INTERVALS = ("month", "year")


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


def load_reference(path: Path | str) -> ReferenceData:
    """Read and validate ``path``; raise PolicyError naming the file, key and reason."""
    data = read_policy(path, if_missing="copy policies/reference.toml")
    data.only({"countries", "payment_terms", "products", "sla"})
    country_tables = data.table("countries")
    countries = {code: _country(code, country_tables.table(code)) for code in country_tables}
    terms = {}
    term_tables = data.table("payment_terms")
    for key in term_tables:
        table = term_tables.table(key)
        table.only({"days", "description"})
        terms[key] = PaymentTerm(key, table.integer("days", minimum=0), table.string("description"))
    product_tables = data.table("products")
    products = {code: _product(code, product_tables.table(code)) for code in product_tables}
    sla_table = data.table("sla")
    tiers = tuple(sla_table.strings("tiers"))
    sla_table.only({"tiers", "none", *tiers})
    sla = {}
    for tier in ("none", *tiers):
        table = sla_table.table(tier)
        table.only({"open", "escalate"})
        sla[tier] = SlaRule(
            tier, table.choice("open", _PRIORITIES), table.choice("escalate", _PRIORITIES)
        )
    for code, product in products.items():
        if product.support_tier not in tiers:
            raise product_tables.table(code).fail(
                "support_tier", f"must be one of sla.tiers {list(tiers)}"
            )
    return ReferenceData(
        file=data.file,
        countries=MappingProxyType(countries),
        payment_terms=MappingProxyType(terms),
        products=MappingProxyType(products),
        tiers=tiers,
        sla=MappingProxyType(sla),
    )


def _country(code: str, table: PolicyTable) -> Country:
    if not re.fullmatch(r"[A-Z]{2}", code):
        raise table.fail("", "must be an ISO 3166-1 alpha-2 code like DE")
    table.only({"name", "currency", "tax_id", "tax_id_example", "legal_forms"})
    try:
        pattern = re.compile(table.string("tax_id"))
    except (re.error, OverflowError) as exc:  # OverflowError: a repeat count too large
        raise table.fail("tax_id", f"not a valid regular expression: {exc}") from None
    example = table.string("tax_id_example")
    if not pattern.fullmatch(example):
        raise table.fail("tax_id_example", "does not match tax_id")
    return Country(
        code=code,
        name=table.string("name"),
        currency=table.string("currency"),
        tax_id=pattern,
        tax_id_example=example,
        legal_forms=tuple(table.strings("legal_forms")),
    )


def _product(code: str, table: PolicyTable) -> Product:
    table.only({"name", "material", "price", "unit_amount", "currency", "interval", "support_tier"})
    try:
        amount = Decimal(table.string("unit_amount"))
    except InvalidOperation:
        raise table.fail("unit_amount", "must be a decimal string like '500.00'") from None
    return Product(
        code=code,
        name=table.string("name"),
        material=table.string("material"),
        price=table.string("price"),
        unit_amount=amount,
        currency=table.string("currency"),
        interval=table.choice("interval", _INTERVALS),
        support_tier=table.string("support_tier"),
    )
