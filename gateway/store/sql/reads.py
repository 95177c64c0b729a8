"""Every read, in SQL both backends run: ``SQLReader`` needs only ``_all`` (rows of one
statement written with ``?`` placeholders) and the few dialect pieces below.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any, Final

from canonical import System
from gateway.store.interface import Reader
from gateway.store.records import (
    AuditEntry,
    CoverageRow,
    DriftFinding,
    FeedRow,
    IdempotencyRecord,
    InboxEvent,
    MessageStatus,
    Operation,
    OperationStatus,
    OutboxMessage,
    OutboxStatus,
    Page,
    ReadRow,
    ReconciliationRun,
    SagaStep,
    XRefRecord,
)
from gateway.store.sql.rows import (
    AUDIT_COLUMNS,
    IDEMPOTENCY_COLUMNS,
    MESSAGE_COLUMNS,
    OPERATION_COLUMNS,
    STEP_COLUMNS,
    Row,
    audit_from_row,
    from_micros,
    idempotency_from_row,
    inbox_from_row,
    load_json,
    message_from_row,
    operation_from_row,
    opt_dt,
    step_from_row,
    system_column,
    to_micros,
    xref_from_row,
)

__all__ = ["SQLReader"]

_NO_ID: Final = 2**63 - 1


class SQLReader(Reader):
    """The ``Reader`` queries; a backend supplies the connection work."""

    #: the customer with its aliases (``rows.xref_select`` with the dialect's string join)
    XREF_SELECT: str
    #: a pattern match that ignores ASCII case (SQLite's ``LIKE``, PostgreSQL's ``ILIKE``)
    LIKE_ANY_CASE: str
    #: the creation time of the oldest pending or leased message (one row, one column)
    OLDEST_OPEN: str

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock

    @abstractmethod
    def _input_field_equals(self, field: str) -> tuple[str, str]:
        """``find_holding``'s test of an input field: SQL comparing the field (named by
        the parameter answered) with a second parameter."""

    def _now(self, now: datetime | None) -> datetime:
        return self._clock() if now is None else now

    @abstractmethod
    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """The rows of one statement (``?`` placeholders, in order)."""

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = await self._all(sql, params)
        return rows[0] if rows else None

    # ------------------------------------------------------------ operations

    async def get_operation(self, operation_id: str) -> Operation | None:
        row = await self._one(
            f"SELECT {OPERATION_COLUMNS} FROM operations WHERE id = ?", (operation_id,)
        )
        return None if row is None else operation_from_row(row)

    async def list_operations(
        self,
        *,
        status: OperationStatus | None = None,
        aggregate_key: str | None = None,
        correlation_id: str | None = None,
        limit: int = 50,
        after: str | None = None,
    ) -> Page[Operation]:
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("status", None if status is None else status.value),
            ("aggregate_key", aggregate_key),
            ("correlation_id", correlation_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if after is not None:
            where.append("seq < ?")
            params.append(_cursor_int(after))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self._all(
            f"SELECT {OPERATION_COLUMNS}, seq FROM operations {clause} ORDER BY seq DESC LIMIT ?",
            (*params, limit + 1),
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(
            items=tuple(operation_from_row(r) for r in rows),
            next_cursor=str(rows[-1][11]) if more and rows else None,
        )

    async def find_holding(
        self,
        *,
        aggregate_key: str,
        kind: str,
        field: str,
        value: str,
        settled: Collection[OperationStatus],
    ) -> Operation | None:
        # The customer's operations come from their index and are filtered inside the
        # database (no row decoded in Python), so a long history costs little.
        if not field.isidentifier():
            raise ValueError(f"an input field name, not {field!r}")
        statuses = sorted(s.value for s in settled)
        test, path = self._input_field_equals(field)
        unsettled = f"AND status NOT IN ({', '.join('?' for _ in statuses)}) " if statuses else ""
        row = await self._one(
            f"SELECT {OPERATION_COLUMNS} FROM operations "
            f"WHERE aggregate_key = ? AND kind = ? {unsettled}"
            f"AND {test} ORDER BY seq DESC LIMIT 1",
            (aggregate_key, kind, *statuses, path, value),
        )
        return None if row is None else operation_from_row(row)

    async def get_steps(self, operation_id: str) -> list[SagaStep]:
        rows = await self._all(
            f"SELECT {STEP_COLUMNS} FROM saga_steps WHERE operation_id = ? ORDER BY position",
            (operation_id,),
        )
        return [step_from_row(r) for r in rows]

    # ------------------------------------------------------------ outbox

    async def get_message(self, message_id: int) -> OutboxMessage | None:
        row = await self._one(f"SELECT {MESSAGE_COLUMNS} FROM outbox WHERE id = ?", (message_id,))
        return None if row is None else message_from_row(row)

    async def list_messages(
        self,
        *,
        operation_id: str | None = None,
        status: MessageStatus | None = None,
        after: int | None = None,
        limit: int = 100,
    ) -> list[OutboxMessage]:
        where = ["id > ?"]
        params: list[Any] = [-1 if after is None else after]
        if operation_id is not None:
            where.append("operation_id = ?")
            params.append(operation_id)
        if status is not None:
            # a literal (an enum value), so the partial index of dead letters serves it
            where.append(f"status = '{MessageStatus(status).value}'")
        rows = await self._all(
            f"SELECT {MESSAGE_COLUMNS} FROM outbox WHERE {' AND '.join(where)} "
            "ORDER BY id LIMIT ?",
            (*params, limit),
        )
        return [message_from_row(r) for r in rows]

    async def outbox_status(self) -> OutboxStatus:
        rows = await self._all(
            "SELECT system, status, count(*) FROM outbox GROUP BY system, status"
        )
        counts: dict[str, dict[MessageStatus, int]] = {}
        for system, status, count in rows:
            counts.setdefault(system, {})[MessageStatus(status)] = count
        oldest = await self._one(self.OLDEST_OPEN)
        oldest_open = from_micros(oldest[0]) if oldest and oldest[0] is not None else None
        return OutboxStatus(counts=counts, oldest_open=oldest_open)

    # ------------------------------------------------------------ idempotency

    async def get_idempotency(
        self, client_id: str, key: str, *, now: datetime | None = None
    ) -> IdempotencyRecord | None:
        record = await self._idempotency_row(client_id, key)
        moment = to_micros(self._now(now))
        if record is None or to_micros(record.expires_at) <= moment:
            return None
        return record

    async def _idempotency_row(self, client_id: str, key: str) -> IdempotencyRecord | None:
        row = await self._one(
            f"SELECT {IDEMPOTENCY_COLUMNS} FROM idempotency WHERE client_id = ? AND key = ?",
            (client_id, key),
        )
        return None if row is None else idempotency_from_row(row)

    # ------------------------------------------------------------ inbox, audit

    async def get_inbox(self, system: str, event_id: str) -> InboxEvent | None:
        row = await self._one(
            "SELECT system, event_id, received_at, payload, processed_at FROM inbox "
            "WHERE system = ? AND event_id = ?",
            (system, event_id),
        )
        return None if row is None else inbox_from_row(row)

    async def audit_trace(
        self,
        correlation_ids: Sequence[str] | None = None,
        *,
        subject: str | None = None,
        actor: str | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        where: list[str] = []
        params: list[Any] = []
        if correlation_ids is not None:
            if not correlation_ids:
                return []
            where.append(f"correlation_id IN ({', '.join('?' * len(correlation_ids))})")
            params += correlation_ids
        if subject is not None:
            where.append("subject = ?")
            params.append(subject)
        if not where:
            return []
        if actor is not None:
            where.append("actor = ?")
            params.append(actor)
        rows = await self._all(
            f"SELECT {AUDIT_COLUMNS} FROM audit WHERE {' AND '.join(where)} "
            "ORDER BY at, id LIMIT ?",
            (*params, limit),
        )
        return [audit_from_row(r) for r in rows]

    async def audit_correlations(
        self, keys: Sequence[str], *, actor: str | None = None, limit: int = 20
    ) -> list[str]:
        if not keys:
            return []
        marks = ", ".join("?" * len(keys))
        where = f"k.key IN ({marks}) AND a.correlation_id IS NOT NULL"
        params: list[Any] = list(keys)
        if actor is not None:
            where += " AND a.actor = ?"
            params.append(actor)
        rows = await self._all(
            "SELECT a.correlation_id, max(a.id) AS last FROM audit_keys AS k "
            f"JOIN audit AS a ON a.id = k.audit_id WHERE {where} "
            "GROUP BY a.correlation_id ORDER BY last DESC LIMIT ?",
            (*params, limit),
        )
        return [str(r[0]) for r in rows]

    async def audit_by_keys(
        self, keys: Sequence[str], *, before: int | None = None, limit: int = 20
    ) -> list[AuditEntry]:
        # each key's newest ids through its own index range, merged here: one customer's
        # history may be long, and only the page is ever read
        found: set[int] = set()
        for key in dict.fromkeys(keys):
            rows = await self._all(
                "SELECT audit_id FROM audit_keys WHERE key = ? AND audit_id < ? "
                "ORDER BY audit_id DESC LIMIT ?",
                (key, _NO_ID if before is None else before, limit),
            )
            found.update(int(r[0]) for r in rows)
        ids = sorted(found, reverse=True)[:limit]
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        rows = await self._all(
            f"SELECT {AUDIT_COLUMNS} FROM audit WHERE id IN ({marks}) ORDER BY id DESC", ids
        )
        return [audit_from_row(r) for r in rows]

    # ------------------------------------------------------------ cross-references

    async def resolve(self, system: System, native_id: str) -> str | None:
        row = await self._one(
            f"SELECT canonical_id FROM xref WHERE {system_column(system)} = ?", (native_id,)
        )
        return None if row is None else str(row[0])

    async def get_xref(self, canonical_id: str) -> XRefRecord | None:
        row = await self._one(
            f"{self.XREF_SELECT} WHERE canonical_id = ? OR canonical_id = "
            "(SELECT canonical_id FROM xref_alias WHERE alias = ?)",
            (canonical_id, canonical_id),
        )
        return None if row is None else xref_from_row(row)

    async def search_xref(self, text: str, *, limit: int = 20) -> list[XRefRecord]:
        prefix = _like_prefix(text)
        contains = f"%{_like_escape(text)}%"
        id_columns = ("canonical_id", "erp", "billing", "crm", "support")
        like = self.LIKE_ANY_CASE
        id_match = " OR ".join(f"{c} {like} ? ESCAPE '\\'" for c in id_columns)
        rows = await self._all(
            f"{self.XREF_SELECT} WHERE {id_match} "
            f"OR name {like} ? ESCAPE '\\' ORDER BY canonical_id LIMIT ?",
            (*([prefix] * len(id_columns)), contains, limit),
        )
        return [xref_from_row(r) for r in rows]

    async def list_xrefs(self, *, limit: int = 100, after: str | None = None) -> Page[XRefRecord]:
        rows = await self._all(
            f"{self.XREF_SELECT} WHERE canonical_id > ? ORDER BY canonical_id LIMIT ?",
            (after or "", limit + 1),
        )
        more = len(rows) > limit
        records = [xref_from_row(r) for r in rows[:limit]]
        return Page(
            items=tuple(records),
            next_cursor=records[-1].canonical_id if more and records else None,
        )

    # ------------------------------------------------------------ the read model

    async def read_rows(
        self,
        *,
        system: str | None = None,
        after: tuple[str, str, str] | None = None,
        limit: int = 10_000,
    ) -> list[ReadRow]:
        where: list[str] = []
        params: list[Any] = []
        if system is not None:
            where.append("system = ?")
            params.append(system)
        if after is not None:
            where.append("(system, kind, id) > (?, ?, ?)")
            params.extend(after)
        sql = (
            "SELECT system, kind, id, customer, version, data, deleted, learned_at, source "
            "FROM read_records"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY system, kind, id LIMIT ?"
        )
        rows = await self._all(sql, [*params, limit])
        return [
            ReadRow(
                system=r[0],
                kind=r[1],
                id=r[2],
                customer=r[3],
                version=r[4],
                data=None if r[5] is None else load_json(r[5]),
                deleted=bool(r[6]),
                learned_at=from_micros(r[7]),
                source=r[8],
            )
            for r in rows
        ]

    async def read_coverage(self) -> list[CoverageRow]:
        rows = await self._all("SELECT system, kind, customer, loaded_at FROM read_coverage")
        return [CoverageRow(r[0], r[1], r[2], from_micros(r[3])) for r in rows]

    async def read_feeds(self) -> list[FeedRow]:
        rows = await self._all(
            "SELECT system, feed, cursor, complete_at, updated_at FROM read_feeds"
        )
        return [FeedRow(r[0], r[1], r[2], opt_dt(r[3]), from_micros(r[4])) for r in rows]

    async def unapplied_events(self, *, limit: int = 100) -> list[InboxEvent]:
        rows = await self._all(
            "SELECT system, event_id, received_at, payload, processed_at FROM inbox "
            "WHERE applied_at IS NULL ORDER BY received_at LIMIT ?",
            (limit,),
        )
        return [inbox_from_row(r) for r in rows]

    # ------------------------------------------------------------ reconciliation

    async def reconciliation_runs(self, *, limit: int = 20) -> list[ReconciliationRun]:
        rows = await self._all(
            "SELECT id, started_at, finished_at, trigger, customers, findings, repaired, "
            "incomplete FROM reconciliation_runs ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            ReconciliationRun(
                id=r[0],
                started_at=from_micros(r[1]),
                finished_at=from_micros(r[2]),
                trigger=r[3],
                customers=r[4],
                findings=r[5],
                repaired=r[6],
                incomplete=load_json(r[7]),
            )
            for r in rows
        ]

    async def reconciliation_findings(
        self, run_id: int, *, limit: int = 100, after: int | None = None
    ) -> Page[DriftFinding]:
        rows = await self._all(
            "SELECT position, kind, erp_bp, system, record_id, field, expected, actual, repair "
            "FROM reconciliation_findings WHERE run_id = ? AND position > ? "
            "ORDER BY position LIMIT ?",
            (run_id, -1 if after is None else after, limit + 1),
        )
        items = tuple(DriftFinding(*r[1:]) for r in rows[:limit])
        more = len(rows) > limit
        return Page(items, str(rows[limit - 1][0]) if more and limit > 0 else None)


def _cursor_int(cursor: str) -> int:
    try:
        return int(cursor)
    except ValueError:
        raise ValueError(
            f"invalid cursor {cursor!r}: pass the next_cursor of a previous page"
        ) from None


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like_prefix(text: str) -> str:
    return f"{_like_escape(text)}%"
