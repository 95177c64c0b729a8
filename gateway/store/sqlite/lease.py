"""The SQLite lease: only the head of each aggregate (its lowest open message, kept in
``outbox_heads`` by triggers, migration 2) is ever a candidate, so a message never
overtakes an earlier pending, leased or dead one of its aggregate; the due heads come from
an index, whatever the backlog. ``BEGIN IMMEDIATE`` holds the write lock meanwhile, so no
other writer interleaves.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from gateway.store.outbox import in_lease_order
from gateway.store.records import OutboxMessage
from gateway.store.sql.rows import MESSAGE_COLUMNS, Row, message_from_row, to_micros

__all__ = ["lease_statement", "leased_messages"]

_LEASE_SQL = f"""
UPDATE outbox
SET status = 'leased', lease_owner = ?1, lease_expires_at = ?2, updated_at = ?3,
    deliveries = deliveries + 1
WHERE id IN (
    SELECT message_id FROM outbox_heads
    WHERE due_at <= ?3
    ORDER BY priority, message_id
    LIMIT ?4
)
RETURNING {MESSAGE_COLUMNS}
"""


def lease_statement(
    owner: str, limit: int, lease_seconds: float, now: datetime
) -> tuple[str, tuple[Any, ...]]:
    """The statement that leases up to ``limit`` due messages for ``owner`` at ``now``."""
    expires = to_micros(now + timedelta(seconds=lease_seconds))
    return _LEASE_SQL, (owner, expires, to_micros(now), limit)


def leased_messages(rows: Sequence[Row]) -> list[OutboxMessage]:
    """The messages ``lease_statement`` returned, in lease order (RETURNING's is unspecified)."""
    return in_lease_order([message_from_row(r) for r in rows])
