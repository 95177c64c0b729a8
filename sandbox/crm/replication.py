"""Data replication: ``/sobjects/{Type}/updated/`` and ``/sobjects/{Type}/deleted/``.

Salesforce's rules, as its REST and SOAP guides give them:

- ``start`` and ``end`` are required ISO 8601 date-times (UTC when no offset is given);
  the seconds are ignored: both are rounded down to the minute;
- ``start`` must precede ``end`` and lie within the last 30 days, else 400
  ``INVALID_REPLICATION_DATE``;
- a record counts as updated when its ``SystemModstamp`` lies in ``[start, covered)``,
  where ``latestDateCovered`` is the rounded ``end``, or the current minute's start if
  ``end`` lies beyond it (changes still arriving are not promised): passing it as the
  next ``start`` leaves no gap;
- deletions come from a delete log that ``Transaction.delete`` writes
  (``deleted:{Type}`` documents: ``{"id", "deletedDate"}``); ``earliestDateAvailable``
  is when the log begins (the sandbox's last seeding, or its oldest entry).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.app import SandboxState
from sandbox.crm.schema import ObjectDef, SalesforceError, format_datetime

__all__ = ["RETENTION", "deleted", "deleted_kind", "updated"]

#: how far back the replication calls reach (Salesforce: 30 days)
RETENTION = timedelta(days=30)


def deleted_kind(obj: ObjectDef) -> str:
    """The store kind of ``obj``'s delete log."""
    return f"deleted:{obj.name}"


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _param(params: dict[str, str], name: str) -> datetime:
    raw = params.get(name)
    if raw is None or not raw.strip():
        raise SalesforceError(
            400, "MISSING_ARGUMENT", f"Missing required parameter: {name} (an ISO 8601 date-time)"
        )
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise SalesforceError(
            400,
            "INVALID_REPLICATION_DATE",
            f"{name} is not a valid date-time: '{raw}' (expected e.g. 2026-12-01T00:00:00Z)",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _minute(moment.astimezone(UTC))


def _window(params: dict[str, str], now: datetime) -> tuple[datetime, datetime]:
    """(start, latestDateCovered), both whole minutes, checked as Salesforce does."""
    start, end = _param(params, "start"), _param(params, "end")
    if start >= end:
        raise SalesforceError(
            400,
            "INVALID_REPLICATION_DATE",
            "startDate must chronologically precede endDate (seconds are ignored)",
        )
    if start < now - RETENTION:
        raise SalesforceError(
            400,
            "INVALID_REPLICATION_DATE",
            "startDate cannot be more than 30 days ago: results are kept for 30 days",
        )
    return start, min(end, _minute(now))


def _parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z")


def updated(
    state: SandboxState, obj: ObjectDef, params: dict[str, str], now: datetime
) -> dict[str, Any]:
    start, covered = _window(params, now)
    hits: list[tuple[datetime, str]] = []
    for record in state.store.iter(obj.name):
        stamp = record.get("SystemModstamp")
        if stamp and start <= (moment := _parse(stamp)) < covered:
            hits.append((moment, record["Id"]))
    hits.sort()
    return {
        "ids": [record_id for _, record_id in hits],
        "latestDateCovered": format_datetime(covered),
    }


def deleted(
    state: SandboxState,
    obj: ObjectDef,
    params: dict[str, str],
    now: datetime,
    log_started: datetime,
) -> dict[str, Any]:
    start, covered = _window(params, now)
    entries = sorted(
        (_parse(entry["deletedDate"]), entry["id"]) for entry in state.store.iter(deleted_kind(obj))
    )
    earliest = min(log_started, entries[0][0]) if entries else log_started
    return {
        "deletedRecords": [
            {"id": record_id, "deletedDate": format_datetime(moment)}
            for moment, record_id in entries
            if start <= moment < covered
        ],
        "earliestDateAvailable": format_datetime(_minute(earliest)),
        "latestDateCovered": format_datetime(covered),
    }
