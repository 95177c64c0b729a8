"""Reconciliation runs: what comparing the systems with each other found, and repaired."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime

from gateway.store.records import DriftFinding, Page, ReconciliationRun
from gateway.store.units import Units

__all__ = ["ReconciliationReads", "ReconciliationShortcuts", "ReconciliationWrites"]


class ReconciliationReads(ABC):
    @abstractmethod
    async def reconciliation_runs(self, *, limit: int = 20) -> list[ReconciliationRun]:
        """The latest reconciliation runs, newest first."""

    @abstractmethod
    async def reconciliation_findings(
        self, run_id: int, *, limit: int = 100, after: int | None = None
    ) -> Page[DriftFinding]:
        """A run's findings in order; ``after`` is a previous page's ``next_cursor``."""


class ReconciliationWrites(ABC):
    @abstractmethod
    async def record_reconciliation(
        self,
        *,
        started_at: datetime,
        finished_at: datetime,
        trigger: str,
        customers: int,
        findings: Sequence[DriftFinding],
        incomplete: Mapping[str, str],
    ) -> int:
        """Store a reconciliation run and its findings; returns the run's id."""


class ReconciliationShortcuts(Units):
    async def reconciliation_runs(self, *, limit: int = 20) -> list[ReconciliationRun]:
        async with self._shortcut_reader() as r:
            return await r.reconciliation_runs(limit=limit)

    async def reconciliation_findings(
        self, run_id: int, *, limit: int = 100, after: int | None = None
    ) -> Page[DriftFinding]:
        async with self._shortcut_reader() as r:
            return await r.reconciliation_findings(run_id, limit=limit, after=after)
