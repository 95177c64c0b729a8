"""Cross-reference registry writes: link native ids into one customer, merging records.

Runs under the unit's write lock (SQLite's, or PostgreSQL's ``lock_xrefs``), so finding
the records that hold the given ids and rewriting them cannot interleave with another
writer.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from canonical import System
from gateway.store.errors import XRefConflict
from gateway.store.records import XRefRecord
from gateway.store.sql.rows import (
    XREF_COLUMNS,
    from_micros,
    system_column,
    to_micros,
    xref_from_row,
)
from gateway.store.sql.unit import SQLUnit

__all__ = ["SQLXRefWrites", "new_canonical_id"]


def new_canonical_id() -> str:
    """A fresh canonical customer id: ``cw_`` + 12 hex digits of milliseconds + 8 random.

    Time first, so listing by canonical id lists customers roughly in creation order.
    """
    return f"cw_{int(time.time() * 1000):012x}{secrets.token_hex(4)}"


class SQLXRefWrites(SQLUnit):
    """``link`` for the SQL transactions."""

    #: what locks the rows a link read until the unit ends ("" where the whole unit
    #: holds the write lock, as in SQLite)
    LOCK_XREF_ROWS = ""

    async def link(
        self,
        ids: Mapping[System, str],
        *,
        canonical_id: str | None = None,
        name: str | None = None,
        now: datetime | None = None,
    ) -> XRefRecord:
        # One read; every write below has a known outcome (the read found every record
        # holding one of these ids, under the write lock), so the writes are queued to go
        # with the unit's next statement.
        moment = from_micros(to_micros(self._now(now)))
        at = to_micros(moment)
        given = {System(s): v for s, v in ids.items()}
        matched = await self._matching_xrefs(given, canonical_id)
        known_canonical = canonical_id is not None and any(
            r.canonical_id == canonical_id or canonical_id in r.aliases for r in matched
        )
        if canonical_id is not None and matched and not known_canonical:
            owners = ", ".join(sorted({r.canonical_id for r in matched}))
            raise XRefConflict(
                f"cannot register new canonical id {canonical_id!r}: ids {_show(given)} "
                f"already belong to {owners}; link without canonical_id to merge into it"
            )
        merged = _merge_ids(given, matched)
        columns = [merged.get(s) for s in System]
        if not matched:
            record = XRefRecord(
                canonical_id=canonical_id or new_canonical_id(),
                erp=merged.get(System.ERP),
                billing=merged.get(System.BILLING),
                crm=merged.get(System.CRM),
                support=merged.get(System.SUPPORT),
                name=name,
                created_at=moment,
                updated_at=moment,
            )
            self._pending.append(
                (
                    f"INSERT INTO xref ({XREF_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (record.canonical_id, *columns, name, at, at),
                )
            )
            return record
        # Survivor: the oldest record (ties by id), so existing references keep working.
        ordered = sorted(matched, key=lambda r: (r.created_at, r.canonical_id))
        survivor, losers = ordered[0], ordered[1:]
        new_name = survivor.name if name is None else name
        if not losers and survivor.ids() == merged and new_name == survivor.name:
            return survivor  # nothing new: no write
        if losers:
            gone = [r.canonical_id for r in losers]
            marks = ",".join("?" * len(gone))
            self._pending += [
                # Aliases of the merged records follow them to the survivor.
                (
                    f"UPDATE xref_alias SET canonical_id = ? WHERE canonical_id IN ({marks})",
                    (survivor.canonical_id, *gone),
                ),
                # Free the losers' unique ids before the survivor takes them.
                (f"DELETE FROM xref WHERE canonical_id IN ({marks})", gone),
                (
                    "INSERT INTO xref_alias (alias, canonical_id) VALUES "
                    + ",".join("(?, ?)" for _ in gone),
                    [v for loser in gone for v in (loser, survivor.canonical_id)],
                ),
            ]
        assignments = ", ".join(f"{system_column(s)} = ?" for s in System)
        self._pending.append(
            (
                f"UPDATE xref SET {assignments}, name = ?, updated_at = ? WHERE canonical_id = ?",
                (*columns, new_name, at, survivor.canonical_id),
            )
        )
        aliases = {*survivor.aliases, *(a for r in losers for a in (r.canonical_id, *r.aliases))}
        return replace(
            survivor,
            name=new_name,
            updated_at=moment,
            aliases=tuple(sorted(aliases)),
            erp=merged.get(System.ERP),
            billing=merged.get(System.BILLING),
            crm=merged.get(System.CRM),
            support=merged.get(System.SUPPORT),
        )

    async def _matching_xrefs(
        self, given: Mapping[System, str], canonical_id: str | None
    ) -> list[XRefRecord]:
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
            f"{self.XREF_SELECT} WHERE {' OR '.join(clauses)}{self.LOCK_XREF_ROWS}", params
        )
        return [xref_from_row(r) for r in rows]


def _merge_ids(given: Mapping[System, str], records: Sequence[XRefRecord]) -> dict[System, str]:
    """Union of the ids; two different ids for one system is a conflict."""
    merged: dict[System, str] = dict(given)
    for record in records:
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
