"""Runs a parsed SOQL query (``sandbox.crm.soql``) over the CRM sandbox's stored records:
the WHERE condition, ORDER BY with NULLS FIRST/LAST, LIMIT and OFFSET.

Text comparisons are case-insensitive, as in Salesforce. A 15-character id literal
matches the 18-character id it abbreviates.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from sandbox.crm.soql import Bool, Cmp, DateRange, FieldPath, In, Like, Query

__all__ = ["Resolver", "run"]

Resolver = Callable[[dict[str, Any], FieldPath], Any]


def _id_equal(stored: Any, wanted: str) -> bool:
    if not isinstance(stored, str):
        return False
    return stored[:15] == wanted if len(wanted) == 15 else stored == wanted


def _key(value: Any) -> Any:
    """A comparable form: text compares case-insensitively, datetimes by instant."""
    if isinstance(value, str):
        return value.casefold()
    return value


def _as_date(value: Any, ftype: str) -> Any:
    if value is None:
        return None
    if ftype == "date":
        return date.fromisoformat(value)
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")


def _compare(ftype: str, stored: Any, op: str, wanted: Any) -> bool:
    if wanted is None or stored is None:
        if op == "=":
            return stored is None and wanted is None
        if op == "!=":
            return (stored is None) != (wanted is None)
        return False
    if ftype in ("id", "reference") and op in ("=", "!="):
        return _id_equal(stored, wanted) == (op == "=")
    if ftype in ("date", "datetime"):
        stored = _as_date(stored, ftype)
        if isinstance(wanted, DateRange):
            day = stored if ftype == "date" else stored.date()
            low, high = wanted.start, wanted.end
            return bool(
                {
                    "=": low <= day <= high,
                    "!=": not low <= day <= high,
                    "<": day < low,
                    "<=": day <= high,
                    ">": day > high,
                    ">=": day >= low,
                }[op]
            )
        if ftype == "date":
            wanted = wanted.date()
    a, b = _key(stored), _key(wanted)
    return bool(
        {
            "=": a == b,
            "!=": a != b,
            "<": a < b,
            "<=": a <= b,
            ">": a > b,
            ">=": a >= b,
        }[op]
    )


def _matches(cond: Any, record: dict[str, Any], resolve: Resolver) -> bool:
    if cond is None:
        return True
    if isinstance(cond, Bool):
        if cond.op == "AND":
            return all(_matches(c, record, resolve) for c in cond.parts)
        if cond.op == "OR":
            return any(_matches(c, record, resolve) for c in cond.parts)
        return not _matches(cond.parts[0], record, resolve)
    stored = resolve(record, cond.path)
    ftype = cond.path.field.type
    if isinstance(cond, Cmp):
        return _compare(ftype, stored, cond.op, cond.value)
    if isinstance(cond, In):
        found = any(_compare(ftype, stored, "=", v) for v in cond.values)
        return found != cond.negate
    assert isinstance(cond, Like)
    return isinstance(stored, str) and cond.regex.fullmatch(stored) is not None


def _sort(records: list[dict[str, Any]], query: Query, resolve: Resolver) -> None:
    # stable sorts applied from the last key to the first give a multi-key order
    for path, desc, nulls_first in reversed(query.order):
        present = [r for r in records if resolve(r, path) is not None]
        absent = [r for r in records if resolve(r, path) is None]
        present.sort(key=lambda r, p=path: _key(resolve(r, p)), reverse=desc)  # type: ignore[misc]
        records[:] = absent + present if nulls_first else present + absent


def run(query: Query, records: list[dict[str, Any]], resolve: Resolver) -> list[dict[str, Any]]:
    """The stored records the query selects, ordered and sliced (not yet projected)."""
    chosen = [r for r in records if _matches(query.where, r, resolve)]
    if query.order:
        _sort(chosen, query, resolve)
    end = None if query.limit is None else query.offset + query.limit
    return chosen[query.offset : end]
