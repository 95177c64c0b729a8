"""Reads through the ERP store's indexes: navigation lookups, the candidates of a filter,
one entity by key, and the version bump every write makes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.app import SandboxState
from sandbox.erp.errors import ODataError
from sandbox.erp.model import ENTITY_SETS, EntitySet, Nav
from sandbox.erp.odata import Query

__all__ = ["Lookup", "candidates", "get_entity", "invalidate"]


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
