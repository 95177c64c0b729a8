"""Cross-reference registry writes: link native ids into one customer, merging records.

Mixed into ``SQLiteTransaction``; runs under its write lock, so finding the records that
hold the given ids and rewriting them cannot interleave with another writer.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from gateway.canonical import System
from gateway.store.errors import RecordNotFound, XRefConflict
from gateway.store.records import XRefRecord
from gateway.store.sqlite_reader import (
    XREF_COLUMNS,
    Row,
    SQLiteReader,
    system_column,
    to_micros,
    xref_from_row,
)

__all__ = ["SQLiteXRefWrites", "new_canonical_id"]


def new_canonical_id() -> str:
    """A fresh canonical customer id: ``cw_`` + 12 hex digits of milliseconds + 8 random.

    Time first, so listing by canonical id lists customers roughly in creation order.
    """
    return f"cw_{int(time.time() * 1000):012x}{secrets.token_hex(4)}"


class SQLiteXRefWrites(SQLiteReader):
    """``link`` for the SQLite transaction."""

    async def link(
        self,
        ids: Mapping[System, str],
        *,
        canonical_id: str | None = None,
        name: str | None = None,
        now: datetime | None = None,
    ) -> XRefRecord:
        at = to_micros(self._now(now))
        given = {System(s): v for s, v in ids.items()}
        matched = await self._matching_xrefs(given, canonical_id)
        known_canonical = canonical_id is not None and any(
            r[0] == canonical_id or canonical_id in aliases for r, aliases in matched
        )
        if canonical_id is not None and matched and not known_canonical:
            owners = ", ".join(sorted({r[0] for r, _ in matched}))
            raise XRefConflict(
                f"cannot register new canonical id {canonical_id!r}: ids {_show(given)} "
                f"already belong to {owners}; link without canonical_id to merge into it"
            )
        merged = _merge_ids(given, [r for r, _ in matched])
        if not matched:
            new_id = canonical_id or new_canonical_id()
            await self._run(
                f"INSERT INTO xref ({XREF_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (new_id, *(merged.get(s) for s in System), name, at, at),
            )
            return await self._xref_or_fail(new_id)
        # Survivor: the oldest record (ties by id), so existing references keep working.
        ordered = sorted(matched, key=lambda item: (item[0][6], item[0][0]))
        survivor = ordered[0][0][0]
        losers = [r[0] for r, _ in ordered[1:]]
        if losers:
            marks = ",".join("?" * len(losers))
            # Free the losers' unique ids before the survivor takes them.
            await self._run(f"DELETE FROM xref WHERE canonical_id IN ({marks})", losers)
            await self._run(
                "INSERT INTO xref_alias (alias, canonical_id) VALUES "
                + ",".join("(?, ?)" for _ in losers),
                [v for loser in losers for v in (loser, survivor)],
            )
        assignments = ", ".join(f"{system_column(s)} = ?" for s in System)
        await self._run(
            f"UPDATE xref SET {assignments}, name = coalesce(?, name), updated_at = ? "
            "WHERE canonical_id = ?",
            (*(merged.get(s) for s in System), name, at, survivor),
        )
        return await self._xref_or_fail(survivor)

    async def _matching_xrefs(
        self, given: Mapping[System, str], canonical_id: str | None
    ) -> list[tuple[Row, list[str]]]:
        clauses = [f"{system_column(s)} = ?" for s in given]
        params: list[Any] = list(given.values())
        if canonical_id is not None:
            clauses.append(
                "canonical_id = ? OR canonical_id IN "
                "(SELECT canonical_id FROM xref_alias WHERE alias = ?)"
            )
            params += [canonical_id, canonical_id]
        if not clauses:
            return []
        rows = await self._all(
            f"SELECT {XREF_COLUMNS} FROM xref WHERE {' OR '.join(clauses)}", params
        )
        result: list[tuple[Row, list[str]]] = []
        for row in rows:
            alias_rows = await self._all(
                "SELECT alias FROM xref_alias WHERE canonical_id = ?", (row[0],)
            )
            result.append((row, [a[0] for a in alias_rows]))
        return result

    async def _xref_or_fail(self, canonical_id: str) -> XRefRecord:
        record = await self.get_xref(canonical_id)
        if record is None:  # pragma: no cover - written in this transaction just above
            raise RecordNotFound(f"xref {canonical_id!r} vanished inside its own transaction")
        return record


def _merge_ids(given: Mapping[System, str], rows: Sequence[Row]) -> dict[System, str]:
    """Union of the ids; two different ids for one system is a conflict."""
    merged: dict[System, str] = dict(given)
    for row in rows:
        record = xref_from_row(row)
        for system, value in record.ids().items():
            current = merged.setdefault(system, value)
            if current != value:
                raise XRefConflict(
                    f"customer {record.canonical_id} has {system.value} id {value!r} but "
                    f"{current!r} was linked to it; one customer cannot have two "
                    f"{system.value} ids - correct the registry entry by hand"
                )
    return merged


def _show(ids: Mapping[System, str]) -> str:
    return ", ".join(f"{s.value}:{v}" for s, v in ids.items())
