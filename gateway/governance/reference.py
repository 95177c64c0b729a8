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
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gateway.canonical import Product
from gateway.governance.errors import PolicyError

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
    file = str(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise PolicyError(file, "", "file not found; copy policies/reference.toml") from None
    except OSError as exc:
        raise PolicyError(file, "", f"cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(file, "", f"not valid TOML: {exc}") from None
    r = _Reader(file)
    r.only(data, "", {"countries", "payment_terms", "products", "sla"})
    country_tables = r.table(data, "countries")
    countries = {
        code: _country(r, code, r.table(country_tables, f"countries.{code}"))
        for code in country_tables
    }
    terms = {}
    term_tables = r.table(data, "payment_terms")
    for key in term_tables:
        at = f"payment_terms.{key}"
        table = r.table(term_tables, at)
        r.only(table, at, {"days", "description"})
        terms[key] = PaymentTerm(
            key, r.integer(table, f"{at}.days"), r.string(table, f"{at}.description")
        )
    product_tables = r.table(data, "products")
    products = {
        code: _product(r, code, r.table(product_tables, f"products.{code}"))
        for code in product_tables
    }
    sla_table = r.table(data, "sla")
    tiers = tuple(r.strings(sla_table, "sla.tiers"))
    r.only(sla_table, "sla", {"tiers", "none", *tiers})
    sla = {}
    for tier in ("none", *tiers):
        at = f"sla.{tier}"
        table = r.table(sla_table, at)
        r.only(table, at, {"open", "escalate"})
        sla[tier] = SlaRule(
            tier,
            r.choice(table, f"{at}.open", _PRIORITIES),
            r.choice(table, f"{at}.escalate", _PRIORITIES),
        )
    for code, product in products.items():
        if product.support_tier not in tiers:
            raise PolicyError(
                file, f"products.{code}.support_tier", f"must be one of sla.tiers {list(tiers)}"
            )
    return ReferenceData(
        file=file,
        countries=MappingProxyType(countries),
        payment_terms=MappingProxyType(terms),
        products=MappingProxyType(products),
        tiers=tiers,
        sla=MappingProxyType(sla),
    )


def _country(r: _Reader, code: str, table: dict[str, Any]) -> Country:
    at = f"countries.{code}"
    if not re.fullmatch(r"[A-Z]{2}", code):
        raise PolicyError(r.file, at, "must be an ISO 3166-1 alpha-2 code like DE")
    r.only(table, at, {"name", "currency", "tax_id", "tax_id_example", "legal_forms"})
    try:
        pattern = re.compile(r.string(table, f"{at}.tax_id"))
    except re.error as exc:
        raise PolicyError(
            r.file, f"{at}.tax_id", f"not a valid regular expression: {exc}"
        ) from None
    example = r.string(table, f"{at}.tax_id_example")
    if not pattern.fullmatch(example):
        raise PolicyError(r.file, f"{at}.tax_id_example", "does not match tax_id")
    return Country(
        code=code,
        name=r.string(table, f"{at}.name"),
        currency=r.string(table, f"{at}.currency"),
        tax_id=pattern,
        tax_id_example=example,
        legal_forms=tuple(r.strings(table, f"{at}.legal_forms")),
    )


def _product(r: _Reader, code: str, table: dict[str, Any]) -> Product:
    at = f"products.{code}"
    r.only(
        table,
        at,
        {"name", "material", "price", "unit_amount", "currency", "interval", "support_tier"},
    )
    try:
        amount = Decimal(r.string(table, f"{at}.unit_amount"))
    except InvalidOperation:
        raise PolicyError(
            r.file, f"{at}.unit_amount", "must be a decimal string like '500.00'"
        ) from None
    return Product(
        code=code,
        name=r.string(table, f"{at}.name"),
        material=r.string(table, f"{at}.material"),
        price=r.string(table, f"{at}.price"),
        unit_amount=amount,
        currency=r.string(table, f"{at}.currency"),
        interval=r.choice(table, f"{at}.interval", _INTERVALS),
        support_tier=r.string(table, f"{at}.support_tier"),
    )


class _Reader:
    """Typed access to TOML values; every complaint names the file and the dotted key."""

    def __init__(self, file: str) -> None:
        self.file = file

    def _get(self, table: dict[str, Any], key: str) -> Any:
        name = key.rsplit(".", 1)[-1]
        if name not in table:
            raise PolicyError(self.file, key, "missing; see policies/reference.toml")
        return table[name]

    def only(self, table: dict[str, Any], at: str, allowed: set[str]) -> None:
        for name in table:
            if name not in allowed:
                key = f"{at}.{name}" if at else name
                raise PolicyError(
                    self.file, key, f"unknown key; expected one of {', '.join(sorted(allowed))}"
                )

    def table(self, table: dict[str, Any], key: str) -> dict[str, Any]:
        value = self._get(table, key)
        if not isinstance(value, dict):
            raise PolicyError(self.file, key, f"must be a table, got {type(value).__name__}")
        return value

    def string(self, table: dict[str, Any], key: str) -> str:
        value = self._get(table, key)
        if not isinstance(value, str) or not value:
            raise PolicyError(self.file, key, f"must be a non-empty string, got {value!r}")
        return value

    def strings(self, table: dict[str, Any], key: str) -> list[str]:
        value = self._get(table, key)
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v for v in value)
        ):
            raise PolicyError(self.file, key, f"must be a non-empty list of strings, got {value!r}")
        return value

    def integer(self, table: dict[str, Any], key: str) -> int:
        value = self._get(table, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise PolicyError(self.file, key, f"must be a whole number of 0 or more, got {value!r}")
        return int(value)

    def choice(self, table: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
        value = self.string(table, key)
        if value not in allowed:
            raise PolicyError(self.file, key, f"must be one of {', '.join(allowed)}, got {value!r}")
        return value
