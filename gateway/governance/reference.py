"""Reference data from ``policies/reference.toml``: countries, payment terms, products, SLAs.

Loaded into the plain types of ``canonical.reference``; canonical validation checks
mutation input against them: tax id format per country, legal form of a legal entity,
payment terms keys, product codes (and their ERP material and billing price), and the case
priority a support tier gets. Every key is checked and unknown keys are refused; a problem raises
``PolicyError(file, key, reason)``, e.g.
``policies/reference.toml: countries.DE.tax_id: not a valid regular expression``.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType

from canonical.models import Product
from canonical.reference import Country, PaymentTerm, ReferenceData, SlaRule
from gateway.governance._toml import PolicyTable, read_policy

__all__ = ["Country", "PaymentTerm", "ReferenceData", "SlaRule", "load_reference"]

_PRIORITIES = ("low", "normal", "high", "urgent")
_INTERVALS = ("month", "year")


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
