"""The OData V2 JSON wire form: stored records rendered as entities (``/Date()/`` values,
SAP's weak ETags, deferred and expanded navigation), and write payloads checked against the
entity set's properties before they reach the store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from sandbox.erp.errors import ODataError
from sandbox.erp.filter import FilterError, parse_datetime_literal
from sandbox.erp.model import ENTITY_SETS, EntitySet, Prop
from sandbox.erp.odata import Query

__all__ = ["Renderer", "check_payload", "etag_of", "render", "to_wire"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _date(ms: int, offset: bool) -> str:
    return f"/Date({ms}+0000)/" if offset else f"/Date({ms})/"


def etag_of(doc: Mapping[str, Any]) -> str:
    """SAP's weak ETag over the last change time: ``W/"datetime'2026-11-01T09%3A00%3A00...'"``."""
    return _etag(int(doc.get("_changed", 0)))


@lru_cache(maxsize=8192)
def _etag(micros: int) -> str:
    # every entity of a collection page and of an expand renders one: the formatting is
    # done once per change stamp (records changed together share one)
    stamp = datetime.fromtimestamp(micros // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    value = f"{stamp}.{micros % 1_000_000:06d}0"
    return f"W/\"datetime'{quote(value, safe='.-')}'\""


def to_wire(es: EntitySet, name: str, value: Any) -> Any:
    prop = es.prop_map[name]
    if value is None:
        return None
    if prop.type == "Edm.DateTime":
        return _date(int(value), False)
    if prop.type == "Edm.DateTimeOffset":
        return _date(int(value), True)
    return value


@dataclass(slots=True)
class Renderer:
    """Turns stored records into OData V2 JSON entities under one service root URL."""

    root: str  # http://host:port/sap/opu/odata/sap
    store_lookup: Any  # Callable[[Nav, doc], list[doc]]

    def uri(self, es: EntitySet, doc: Mapping[str, Any]) -> str:
        return f"{self.root}/{es.service}/{es.name}{es.key_segment(es.key_of(doc))}"

    def entity(
        self,
        es: EntitySet,
        doc: Mapping[str, Any],
        *,
        select: tuple[str, ...] | None = None,
        expand: tuple[tuple[str, ...], ...] = (),
    ) -> dict[str, Any]:
        uri = self.uri(es, doc)
        out: dict[str, Any] = {
            "__metadata": {
                "id": uri,
                "uri": uri,
                "type": es.qualified_type,
                "etag": etag_of(doc),
            }
        }
        for name, date in es.wire_props:
            if select is None or name in select:
                value = doc.get(name)
                # to_wire, inlined: every property of every rendered entity passes here
                out[name] = value if value is None or not date else _date(int(value), date == 2)
        here = {path[0] for path in expand}
        for nav in es.navs:
            if nav.name in here:
                deeper = tuple(p[1:] for p in expand if p[0] == nav.name and len(p) > 1)
                target = ENTITY_SETS[nav.target]
                rows = self.store_lookup(nav, doc)
                if nav.many:
                    out[nav.name] = {
                        "results": [self.entity(target, r, expand=deeper) for r in rows]
                    }
                else:
                    out[nav.name] = self.entity(target, rows[0], expand=deeper) if rows else None
            elif select is None or nav.name in select:
                out[nav.name] = {"__deferred": {"uri": f"{uri}/{nav.name}"}}
        return out


def render(renderer: Renderer, es: EntitySet, doc: Mapping[str, Any], q: Query) -> dict[str, Any]:
    return renderer.entity(es, doc, select=q.select, expand=q.expand)


# ---------------------------------------------------------------------------- payload checks


def _check_value(es: EntitySet, name: str, value: Any) -> Any:
    prop = es.prop_map[name]
    if value is None:
        if not prop.nullable or name in es.keys:
            raise ODataError(400, f"Property '{name}' must not be null", propertyref=name)
        return None
    match prop.type:
        case "Edm.String":
            if not isinstance(value, str):
                raise ODataError(400, f"Property '{name}' expects a string", propertyref=name)
            if prop.max_length is not None and len(value) > prop.max_length:
                raise ODataError(
                    400,
                    f"Value for '{name}' is longer than {prop.max_length} characters",
                    propertyref=name,
                )
            return value
        case "Edm.Decimal":
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ODataError(400, f"Property '{name}' expects a decimal", propertyref=name)
            try:
                number = Decimal(str(value))
            except InvalidOperation as exc:
                raise ODataError(
                    400, f"Invalid decimal '{value}' for '{name}'", propertyref=name
                ) from exc
            if not number.is_finite() or not _fits(number, prop):
                raise ODataError(
                    400,
                    f"Invalid decimal '{value}' for '{name}': at most "
                    f"{prop.precision} digits, {prop.scale} after the point",
                    propertyref=name,
                )
            return str(number)
        case "Edm.Boolean":
            if not isinstance(value, bool):
                raise ODataError(400, f"Property '{name}' expects true or false", propertyref=name)
            return value
        case "Edm.DateTime" | "Edm.DateTimeOffset":
            return _parse_wire_date(name, value)
    raise ODataError(400, f"Property '{name}' cannot be written", propertyref=name)


def _fits(number: Decimal, prop: Prop) -> bool:
    """Within the property's Precision/Scale (as SAP's DEC fields are)."""
    precision, scale = prop.precision or 28, prop.scale or 0
    if abs(number) >= Decimal(10) ** (precision - scale):
        return False
    return number == number.quantize(Decimal(1).scaleb(-scale))


_WIRE_DATE = re.compile(r"^/Date\((-?\d+)(?:[+-]\d{4})?\)/$")


def _parse_wire_date(name: str, value: Any) -> int:
    if isinstance(value, str):
        match = _WIRE_DATE.match(value)
        if match:
            return int(match.group(1))
        try:
            return parse_datetime_literal(value)
        except FilterError:
            pass
    raise ODataError(400, f"Invalid date for '{name}': expected \"/Date(<ms>)/\"", propertyref=name)


def check_payload(
    es: EntitySet, body: Any, *, creating: bool, allow_navs: bool = True
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """Validate a create/update body -> (properties, nested deep-insert bodies per nav).

    Unknown properties, wrong types, over-long strings and read-only properties are 400s
    that name the property; nothing has touched the store yet.
    """
    if not isinstance(body, dict):
        raise ODataError(400, f"The request body for '{es.name}' must be a JSON object")
    props: dict[str, Any] = {}
    nested: dict[str, list[dict[str, Any]]] = {}
    for name, value in body.items():
        if name == "__metadata":
            continue
        if name in es.nav_map:
            if not (allow_navs and creating):
                raise ODataError(
                    400, f"Navigation property '{name}' cannot be changed here", propertyref=name
                )
            nav = es.nav_map[name]
            if isinstance(value, dict) and "results" in value:
                value = value["results"]
            items = value if isinstance(value, list) else [value]
            if not nav.many and len(items) != 1:
                raise ODataError(400, f"'{name}' takes a single entity", propertyref=name)
            if not all(isinstance(i, dict) for i in items):
                raise ODataError(400, f"'{name}' expects entities (JSON objects)", propertyref=name)
            nested[name] = items
            continue
        prop = es.prop_map.get(name)
        if prop is None or not _NAME.fullmatch(name):
            raise ODataError(
                400,
                f"Property '{name}' is invalid: not found in type '{es.qualified_type}'",
                propertyref=name,
            )
        allowed = prop.creatable if creating else prop.updatable or name in es.keys
        if not allowed:
            raise ODataError(400, f"Property '{name}' is read-only", propertyref=name)
        props[name] = _check_value(es, name, value)
    return props, nested
