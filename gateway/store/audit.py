"""The audit trail: who did what to which subject, under which correlation id.

Entries are appended (often in batches by the audit writer), found by correlation id,
subject or business key (``records.audit_keys``), and purged by age.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime

from gateway.store.records import AuditEntry, NewAudit
from gateway.store.units import Units

__all__ = ["AuditReads", "AuditShortcuts", "AuditWrites"]


class AuditReads(ABC):
    @abstractmethod
    async def audit_trace(
        self,
        correlation_ids: Sequence[str] | None = None,
        *,
        subject: str | None = None,
        actor: str | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """Entries of these correlation ids and/or about this ``subject`` (e.g.
        ``operation:<id>``) in time order (``at``, then id), at most ``limit`` (the
        oldest); with ``actor``, only the entries that actor caused. With neither
        ``correlation_ids`` nor ``subject``, nothing.

        Time, not id alone: vendor calls are written in batches, so a call's id may be
        higher than that of the saga step it served, while its ``at`` is when it began."""

    @abstractmethod
    async def audit_correlations(
        self, keys: Sequence[str], *, actor: str | None = None, limit: int = 20
    ) -> list[str]:
        """The correlation ids of entries found by any of these business keys (see
        ``records.audit_keys``), the most recently active first; with ``actor``, only
        through entries that actor caused."""

    @abstractmethod
    async def audit_by_keys(
        self, keys: Sequence[str], *, before: int | None = None, limit: int = 20
    ) -> list[AuditEntry]:
        """Entries found by any of these business keys, newest (highest id) first, with
        ids below ``before`` when given: one page of a customer's history."""


class AuditWrites(ABC):
    @abstractmethod
    async def append_audit(self, *entries: NewAudit) -> None:
        """Append entries (``NewAudit.at`` ``None``: the store's clock). Answers nothing,
        so a backend may hold them back like other writes."""

    @abstractmethod
    async def purge_audit(self, *, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` of the oldest entries written before ``before`` (with
        their keys); returns how many. Call it again while it returns ``limit``: small
        units keep the writer free for everyone else between them."""


class AuditShortcuts(Units):
    async def audit_trace(
        self,
        correlation_ids: Sequence[str] | None = None,
        *,
        subject: str | None = None,
        actor: str | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        async with self._shortcut_reader() as r:
            return await r.audit_trace(correlation_ids, subject=subject, actor=actor, limit=limit)

    async def audit_correlations(
        self, keys: Sequence[str], *, actor: str | None = None, limit: int = 20
    ) -> list[str]:
        async with self._shortcut_reader() as r:
            return await r.audit_correlations(keys, actor=actor, limit=limit)

    async def audit_by_keys(
        self, keys: Sequence[str], *, before: int | None = None, limit: int = 20
    ) -> list[AuditEntry]:
        async with self.reader() as r:  # several statements: one consistent view
            return await r.audit_by_keys(keys, before=before, limit=limit)

    async def append_audit(self, *entries: NewAudit) -> None:
        async with self.transaction() as tx:
            await tx.append_audit(*entries)

    async def purge_audit(self, *, before: datetime, limit: int) -> int:
        async with self.transaction() as tx:
            return await tx.purge_audit(before=before, limit=limit)
