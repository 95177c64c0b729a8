"""Rows <-> records for the SQL backends: column lists, times as integer microseconds
since the epoch, JSON as text (the same in SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from canonical import System
from gateway.store.records import (
    JSON,
    AuditEntry,
    IdempotencyRecord,
    IdempotencyState,
    InboxEvent,
    MessageStatus,
    Operation,
    OperationStatus,
    OutboxMessage,
    SagaStep,
    StepStatus,
    XRefRecord,
)

__all__ = ["Row", "from_micros", "to_micros"]

Row = Sequence[Any]


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO: Final = timedelta(microseconds=1)


def to_micros(moment: datetime) -> int:
    """Aware datetime -> integer microseconds since the epoch (exact, unlike a float)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: pass an aware UTC datetime")
    return (moment - _EPOCH) // _MICRO


def from_micros(value: int) -> datetime:
    return _EPOCH + value * _MICRO


def opt_dt(value: int | None) -> datetime | None:
    return None if value is None else from_micros(value)


def dump_json(value: JSON) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def load_json(value: str | None) -> JSON:
    return None if value is None else orjson.loads(value)


OPERATION_COLUMNS: Final = (
    "id, kind, status, correlation_id, client_id, aggregate_key, input, result, error, "
    "created_at, updated_at"
)


def operation_from_row(row: Row) -> Operation:
    return Operation(
        id=row[0],
        kind=row[1],
        status=OperationStatus(row[2]),
        correlation_id=row[3],
        client_id=row[4],
        aggregate_key=row[5],
        input=load_json(row[6]),
        result=load_json(row[7]),
        error=row[8],
        created_at=from_micros(row[9]),
        updated_at=from_micros(row[10]),
    )


STEP_COLUMNS: Final = "operation_id, name, status, attempts, result, error, updated_at"


def step_from_row(row: Row) -> SagaStep:
    return SagaStep(
        operation_id=row[0],
        name=row[1],
        status=StepStatus(row[2]),
        attempts=row[3],
        result=load_json(row[4]),
        error=row[5],
        updated_at=from_micros(row[6]),
    )


MESSAGE_COLUMNS: Final = (
    "id, operation_id, step, aggregate_key, system, type, payload, idempotency_key, priority, "
    "status, attempts, available_at, lease_owner, lease_expires_at, last_error, created_at, "
    "updated_at, deliveries"
)


def message_from_row(row: Row) -> OutboxMessage:
    return OutboxMessage(
        id=row[0],
        operation_id=row[1],
        step=row[2],
        aggregate_key=row[3],
        system=row[4],
        type=row[5],
        payload=load_json(row[6]),
        idempotency_key=row[7],
        priority=row[8],
        status=MessageStatus(row[9]),
        attempts=row[10],
        available_at=from_micros(row[11]),
        lease_owner=row[12],
        lease_expires_at=opt_dt(row[13]),
        last_error=row[14],
        created_at=from_micros(row[15]),
        updated_at=from_micros(row[16]),
        deliveries=row[17],
    )


IDEMPOTENCY_COLUMNS: Final = (
    "client_id, key, fingerprint, state, operation_id, response, created_at, expires_at"
)


def idempotency_from_row(row: Row) -> IdempotencyRecord:
    return IdempotencyRecord(
        client_id=row[0],
        key=row[1],
        fingerprint=row[2],
        state=IdempotencyState(row[3]),
        operation_id=row[4],
        response=load_json(row[5]),
        created_at=from_micros(row[6]),
        expires_at=from_micros(row[7]),
    )


AUDIT_COLUMNS: Final = "id, at, correlation_id, actor, action, subject, detail"


#: past every audit id (SQLite's largest integer)
def audit_from_row(row: Row) -> AuditEntry:
    return AuditEntry(
        id=row[0],
        at=from_micros(row[1]),
        correlation_id=row[2],
        actor=row[3],
        action=row[4],
        subject=row[5],
        detail=load_json(row[6]),
    )


XREF_COLUMNS: Final = "canonical_id, erp, billing, crm, support, name, created_at, updated_at"


def xref_select(concat: str) -> str:
    """A customer with its aliases in the same row (joined by the ASCII unit separator,
    which no id contains, with the dialect's ``concat`` of ``a.alias``), so reading one
    costs one statement."""
    return (
        f"SELECT {XREF_COLUMNS}, (SELECT {concat} FROM xref_alias AS a "
        "WHERE a.canonical_id = xref.canonical_id) FROM xref"
    )


def inbox_from_row(row: Row) -> InboxEvent:
    """An inbox row: system, event_id, received_at, payload, processed_at."""
    return InboxEvent(
        system=row[0],
        event_id=row[1],
        received_at=from_micros(row[2]),
        payload=load_json(row[3]),
        processed_at=opt_dt(row[4]),
    )


def xref_from_row(row: Row) -> XRefRecord:
    aliases = row[8].split("\x1f") if len(row) > 8 and row[8] else ()
    return XRefRecord(
        canonical_id=row[0],
        erp=row[1],
        billing=row[2],
        crm=row[3],
        support=row[4],
        name=row[5],
        created_at=from_micros(row[6]),
        updated_at=from_micros(row[7]),
        aliases=tuple(sorted(aliases)),
    )


def system_column(system: System | str) -> str:
    """The xref column for a system; only the four known names ever reach SQL text."""
    return System(system).value
