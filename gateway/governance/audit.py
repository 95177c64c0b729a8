"""Audit-trail settings from ``policies/audit.toml``: how long entries are kept.

The file is optional; without it the defaults below apply. Every key is checked and
unknown keys are refused (``PolicyError(file, key, reason)``)::

    retention_days = 90       # entries older than this are deleted
    batch = 500               # entries one purge unit deletes at most: the writer is free
                              # for everyone else between units
    purge_interval = 3600.0   # seconds between purge rounds
    queue = 10000             # vendor calls waiting to be written at most; past it the
                              # oldest are dropped (and counted)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from gateway.governance._toml import read_policy

__all__ = ["AuditPolicy", "load_audit_policy"]


@dataclass(frozen=True, slots=True)
class AuditPolicy:
    """How long the audit trail keeps entries, and how it writes and purges them."""

    retention_days: int = 90
    batch: int = 500
    purge_interval: float = 3600.0
    queue: int = 10_000

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.retention_days)


def load_audit_policy(path: Path | str) -> AuditPolicy:
    """Read ``path`` (a missing file means the defaults); raise PolicyError on a bad value."""
    data = read_policy(path, if_missing=None)
    data.only({"retention_days", "batch", "purge_interval", "queue"})
    default = AuditPolicy()
    return AuditPolicy(
        retention_days=data.integer("retention_days", minimum=1, default=default.retention_days),
        batch=data.integer("batch", minimum=1, default=default.batch),
        purge_interval=data.number("purge_interval", default=default.purge_interval),
        queue=data.integer("queue", minimum=1, default=default.queue),
    )
