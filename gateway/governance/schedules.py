"""Background schedules from ``policies/schedules.toml`` (optional file; every key checked,
unknown keys refused naming file, key and reason)::

    [reconcile]
    interval = "6h"     # how often the gateway reconciles the four systems; "0s" = never
    repair = false      # write the owners' fixes too (else only report)

    [retention]
    interval = "1h"     # how often old records are purged
    inbox_days = 7      # processed webhook events (keep past the vendors' redelivery window)
    outbox_days = 7     # finished outbox messages (done, discarded)
    batch = 500         # rows per purge transaction (writers wait at most one batch)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gateway.governance._toml import read_policy
from gateway.governance.readmodel import duration

__all__ = ["ReconcileSchedule", "RetentionSchedule", "Schedules", "load_schedules"]


@dataclass(frozen=True, slots=True)
class ReconcileSchedule:
    interval: float = 6 * 3600.0
    repair: bool = False


@dataclass(frozen=True, slots=True)
class RetentionSchedule:
    interval: float = 3600.0
    inbox_days: float = 7.0
    outbox_days: float = 7.0
    batch: int = 500


@dataclass(frozen=True, slots=True)
class Schedules:
    reconcile: ReconcileSchedule = field(default_factory=ReconcileSchedule)
    retention: RetentionSchedule = field(default_factory=RetentionSchedule)


def load_schedules(path: Path | str) -> Schedules:
    data = read_policy(path, if_missing=None)
    data.only({"reconcile", "retention"})
    rec = data.table("reconcile", required=False)
    rec.only({"interval", "repair"})
    ret = data.table("retention", required=False)
    ret.only({"interval", "inbox_days", "outbox_days", "batch"})
    retention = RetentionSchedule(
        interval=duration(ret, "interval", 3600.0),
        inbox_days=ret.number("inbox_days", default=7.0),
        outbox_days=ret.number("outbox_days", default=7.0),
        batch=ret.integer("batch", minimum=1, default=500),
    )
    if retention.inbox_days < 3:
        # Stripe retries a webhook for up to three days: a shorter window could let a late
        # redelivery in as new
        raise ret.fail("inbox_days", "must be at least 3 (the vendors redeliver for days)")
    return Schedules(
        reconcile=ReconcileSchedule(
            interval=duration(rec, "interval", 6 * 3600.0),
            repair=rec.boolean("repair", default=False),
        ),
        retention=retention,
    )
