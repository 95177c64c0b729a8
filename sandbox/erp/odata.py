"""OData V2 mechanics: resource paths, system query options, JSON rendering, payload checks.

Kept free of Starlette so each piece can be read (and tested) on its own; handlers in
``sandbox.erp.routes`` glue them to requests and the store.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

from sandbox.app import SandboxState
from sandbox.erp.errors import ODataError
from sandbox.erp.filter import Filter, FilterError, compile_filter, parse_datetime_literal
from sandbox.erp.model import ENTITY_SETS, EntitySet, Nav, Prop, Service

__all__ = [
    "PAGE_SIZE",
    "Lookup",
    "Query",
    "Renderer",
    "ResourcePath",
    "apply",
    "candidates",
    "check_payload",
    "etag_of",
    "get_entity",
    "invalidate",
    "next_link",
    "parse_path",
    "parse_query",
    "render",
    "to_wire",
]

PAGE_SIZE = 100
_SYSTEM_OPTIONS = {
    "$filter",
    "$select",
    "$expand",
    "$top",
    "$skip",
    "$inlinecount",
    "$orderby",
    "$format",
    "$skiptoken",
}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# ---------------------------------------------------------------------------- resource paths


@dataclass(frozen=True, slots=True)
class ResourcePath:
    entity_set: EntitySet
    key: tuple[str, ...] | None = None
    nav: Nav | None = None
    count: bool = False


def _split_segments(path: str) -> list[str]:
    """Split on '/' outside quoted key literals."""
    segments: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in path:
        if ch == "'":
            quoted = not quoted
        if ch == "/" and not quoted:
            segments.append("".join(current))
            current = []
        else:
            current.append(ch)
    segments.append("".join(current))
    return segments


def _parse_key(es: EntitySet, text: str) -> tuple[str, ...]:
    """``'1000042'`` or ``Customer='1',SalesOrganization='1010',...`` -> key values in order."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == "'":
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    values: dict[str, str] = {}
    for part in parts:
        name, eq, literal = part.partition("=")
        if not eq:
            name, literal = "", part
        literal = literal.strip()
        if len(literal) < 2 or literal[0] != "'" or literal[-1] != "'":
            raise ODataError(400, f"Invalid key predicate '({text})': keys are quoted strings")
        value = literal[1:-1].replace("''", "'")
        if name:
            name = name.strip()
            if name not in es.keys:
                raise ODataError(400, f"'{name}' is not a key of '{es.name}'", propertyref=name)
            values[name] = value
        elif len(es.keys) == 1 and len(parts) == 1:
            values[es.keys[0]] = value
        else:
            raise ODataError(400, f"'{es.name}' has a composite key: name every key property")
    if set(values) != set(es.keys):
        missing = ", ".join(k for k in es.keys if k not in values)
        raise ODataError(400, f"Key predicate of '{es.name}' misses {missing}")
    return tuple(values[k] for k in es.keys)


def parse_path(service: Service, path: str) -> ResourcePath:
    segments = [s for s in _split_segments(path) if s != ""]
    if not segments:
        raise ODataError(404, "No resource path given")
    head = segments[0]
    name, _, rest = head.partition("(")
    es = service.set_map.get(name)
    if es is None:
        raise ODataError(404, f"Resource not found for segment '{name}'")
    key = None
    if rest:
        if not rest.endswith(")"):
            raise ODataError(400, f"Malformed key predicate in '{head}'")
        key = _parse_key(es, rest[:-1])
    tail = segments[1:]
    if not tail:
        return ResourcePath(es, key)
    if tail == ["$count"] and key is None:
        return ResourcePath(es, None, count=True)
    if key is None:
        raise ODataError(400, f"Segment '{tail[0]}' needs a single entity of '{es.name}' first")
    nav = es.nav_map.get(tail[0])
    if nav is None:
        raise ODataError(404, f"Resource not found for segment '{tail[0]}'")
    if len(tail) == 1:
        return ResourcePath(es, key, nav)
    if tail[1:] == ["$count"] and nav.many:
        return ResourcePath(es, key, nav, count=True)
    raise ODataError(404, f"Resource not found for segment '{'/'.join(tail[1:])}'")


# ---------------------------------------------------------------------------- query options


@dataclass(slots=True)
class Query:
    filter: Filter | None = None
    select: tuple[str, ...] | None = None
    expand: tuple[tuple[str, ...], ...] = ()
    top: int | None = None
    skip: int = 0
    inlinecount: bool = False
    orderby: tuple[tuple[str, bool], ...] = ()  # (property, descending)
    skiptoken: int = 0
    #: the options as given, to rebuild the ``__next`` link
    raw: list[tuple[str, str]] = field(default_factory=list)


def _non_negative(name: str, value: str) -> int:
    if not value.isdigit() or len(value) > 9:
        raise ODataError(400, f"Invalid value '{value}' for system query option {name}")
    return int(value)


def _expand_paths(es: EntitySet, text: str) -> tuple[tuple[str, ...], ...]:
    paths = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise ODataError(400, "Empty path in $expand")
        current = es
        steps = item.split("/")
        for step in steps:
            nav = current.nav_map.get(step)
            if nav is None:
                raise ODataError(
                    400,
                    f"Navigation property '{step}' not found in type '{current.qualified_type}'",
                    propertyref=step,
                )
            current = ENTITY_SETS[nav.target]
        paths.append(tuple(steps))
    return tuple(paths)


def parse_query(es: EntitySet, params: Iterable[tuple[str, str]], *, single: bool) -> Query:
    """Check every system query option against ``es``; ODataError(400) names the bad one."""
    q = Query()
    seen: set[str] = set()
    for name, value in params:
        if not name.startswith("$"):
            continue  # custom options (sap-client, sap-language) are the server's business
        if name not in _SYSTEM_OPTIONS:
            raise ODataError(400, f"System query option '{name}' is not supported")
        if name in seen:
            raise ODataError(400, f"System query option '{name}' given more than once")
        seen.add(name)
        if name == "$format":
            if value.lower() not in ("json", "application/json"):
                raise ODataError(
                    400, f"Format '{value}' is not supported: this sandbox answers JSON only"
                )
            q.raw.append((name, value))
            continue
        if single and name not in ("$select", "$expand"):
            raise ODataError(400, f"System query option '{name}' is not allowed on a single entity")
        q.raw.append((name, value))
        match name:
            case "$filter":
                try:
                    q.filter = compile_filter(value, es)
                except FilterError as exc:
                    raise ODataError(
                        400, f"Invalid filter expression: {exc}", propertyref=exc.prop or ""
                    ) from exc
            case "$select":
                props = tuple(p.strip() for p in value.split(",") if p.strip())
                for p in props:
                    if p != "*" and p not in es.prop_map and p not in es.nav_map:
                        raise ODataError(
                            400,
                            f"Property '{p}' not found in type '{es.qualified_type}'",
                            propertyref=p,
                        )
                q.select = None if "*" in props else props
            case "$expand":
                q.expand = _expand_paths(es, value)
            case "$top":
                q.top = _non_negative(name, value)
            case "$skip":
                q.skip = _non_negative(name, value)
            case "$skiptoken":
                q.skiptoken = _non_negative(name, value)
            case "$inlinecount":
                if value not in ("allpages", "none"):
                    raise ODataError(400, f"Invalid value '{value}' for $inlinecount")
                q.inlinecount = value == "allpages"
            case "$orderby":
                q.orderby = _orderby(es, value)
    return q


def _orderby(es: EntitySet, text: str) -> tuple[tuple[str, bool], ...]:
    items = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise ODataError(400, f"Invalid $orderby item '{part.strip()}'")
        if words[0] not in es.prop_map:
            raise ODataError(
                400,
                f"Property '{words[0]}' not found in type '{es.qualified_type}'",
                propertyref=words[0],
            )
        items.append((words[0], len(words) == 2 and words[1] == "desc"))
    return tuple(items)


def _sort_value(es: EntitySet, name: str, doc: Mapping[str, Any]) -> tuple[int, Any]:
    value = doc.get(name)
    if value is None:
        return (0, "")
    if es.prop_map[name].type == "Edm.Decimal":
        try:
            return (1, Decimal(str(value)))
        except InvalidOperation:
            return (0, "")
    return (1, value)


def apply(
    es: EntitySet, docs: list[dict[str, Any]], q: Query, page_size: int = PAGE_SIZE
) -> tuple[list[Any], int, int]:
    """Filter and order ``docs``; answer (the page, the count, next skiptoken or -1).

    Server-side paging cuts the requested window (after ``$skip``/``$top``) into pages of
    ``page_size``; a ``$top`` above the page size still pages.
    """
    if q.filter is not None:
        docs = [d for d in docs if q.filter(d)]
    docs.sort(key=lambda d: es.key_of(d))
    for name, desc in reversed(q.orderby):
        docs.sort(key=lambda d, n=name: _sort_value(es, n, d), reverse=desc)  # type: ignore[misc]
    count = len(docs)
    window = docs[q.skip :]
    if q.top is not None:
        window = window[: q.top]
    page = window[q.skiptoken : q.skiptoken + page_size]
    following = q.skiptoken + page_size
    return page, count, following if following < len(window) else -1


def next_link(url_base: str, q: Query, token: int) -> str:
    params = [(k, v) for k, v in q.raw if k != "$skiptoken"] + [("$skiptoken", str(token))]
    query = urlencode(params, quote_via=quote, safe="$/',()")
    return f"{url_base}?{query}"


# ---------------------------------------------------------------------------- rendering


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


# ---------------------------------------------------------------------------- lookups


def invalidate(state: SandboxState) -> None:
    """Call after every store change. (Navigation lookups use the store's own indexes,
    which every write keeps current; the version is kept for whoever watches changes.)"""
    version = state.extra.get("version", 0)
    state.extra["version"] = (version if isinstance(version, int) else 0) + 1


class Lookup:
    """Navigation lookups through the store's indexes (one per target set and link
    columns, updated by each write instead of rebuilt: a write costs no later scan)."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def __call__(self, nav: Nav, doc: dict[str, Any]) -> list[dict[str, Any]]:
        cols = tuple(b for _, b in nav.link)
        groups = self.state.store.grouped(nav.target, ("nav", cols), _columns(cols))
        rows = groups.get(tuple(doc.get(a) for a, _ in nav.link))
        if not rows:
            return []
        return sorted(rows.values(), key=ENTITY_SETS[nav.target].key_of)


def _columns(cols: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row.get(c) for c in cols)

    return key


def candidates(state: SandboxState, es: EntitySet, q: Query) -> list[dict[str, Any]]:
    """The records of ``es`` that ``q``'s filter may accept, in creation order: all of
    them, or, when the filter pins a string property to some values, only those an index
    gives (``apply`` filters and orders them as it would all records)."""
    hint = q.filter.hint if q.filter is not None else None
    if hint is None:
        return list(state.store.iter(es.name))
    prop, values = hint
    groups = state.store.grouped(es.name, ("eq", prop), _scalar(prop))
    return [doc for value in values for doc in groups.get(value, {}).values()]


class _Unhashable:
    """The index key of a value no string equals (lists, objects)."""


_UNHASHABLE = _Unhashable()


def _scalar(prop: str) -> Callable[[dict[str, Any]], Any]:
    def key(doc: dict[str, Any]) -> Any:
        value = doc.get(prop)
        return value if value is None or isinstance(value, str | int | float) else _UNHASHABLE

    return key


def get_entity(state: SandboxState, es: EntitySet, key: tuple[str, ...]) -> dict[str, Any]:
    doc = state.store.get(es.name, es.doc_id(key))
    if doc is None:
        shown = es.key_segment(key)
        raise ODataError(404, f"Resource not found for segment '{es.name}{shown}'")
    return doc
