"""OData V2 requests: resource paths and system query options, and the paging they ask for.

Kept free of Starlette so each piece can be read (and tested) on its own; handlers in
``sandbox.erp.routes`` glue them to requests and the store. The JSON wire form (rendering
entities, ETags, payload checks) is ``sandbox.erp.wire``; reads through the store's indexes
are ``sandbox.erp.lookup``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urlencode

from sandbox.erp.errors import ODataError
from sandbox.erp.filter import Filter, FilterError, compile_filter
from sandbox.erp.model import ENTITY_SETS, EntitySet, Nav, Service

__all__ = [
    "PAGE_SIZE",
    "Query",
    "ResourcePath",
    "apply",
    "next_link",
    "parse_path",
    "parse_query",
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
