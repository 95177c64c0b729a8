"""The inbox: webhook events received, so a redelivered event is handled once.

An event is recorded when received (``record_inbox``), marked processed when its reaction
ran, and marked applied when the read model took it in (``mark_applied``); the retention
task purges events that are both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime

from gateway.store.records import JSON, InboxEvent
from gateway.store.units import Units

__all__ = ["InboxReads", "InboxShortcuts", "InboxWrites"]


class InboxReads(ABC):
    @abstractmethod
    async def get_inbox(self, system: str, event_id: str) -> InboxEvent | None:
        """A received event, or ``None`` if it was not recorded."""

    @abstractmethod
    async def unapplied_events(self, *, limit: int = 100) -> list[InboxEvent]:
        """Events the read model has not applied yet, oldest received first."""


class InboxWrites(ABC):
    @abstractmethod
    async def record_inbox(
        self, system: str, event_id: str, payload: JSON, *, now: datetime | None = None
    ) -> bool:
        """Record a received event; False if (system, event_id) was already recorded."""

    @abstractmethod
    async def mark_inbox_processed(
        self, system: str, event_id: str, *, now: datetime | None = None
    ) -> bool:
        """Mark a recorded event handled; False if it was not recorded."""

    @abstractmethod
    async def mark_applied(
        self, events: Sequence[tuple[str, str]], *, now: datetime | None = None
    ) -> None:
        """Mark events (system, event id) applied to the read model."""

    @abstractmethod
    async def purge_inbox(self, *, before: datetime, limit: int | None = None) -> int:
        """Delete events processed before ``before`` and applied; returns how many. Keep
        events longer than the vendors' redelivery window, or a late redelivery is handled
        twice."""


class InboxShortcuts(Units):
    async def get_inbox(self, system: str, event_id: str) -> InboxEvent | None:
        async with self._shortcut_reader() as r:
            return await r.get_inbox(system, event_id)

    async def unapplied_events(self, *, limit: int = 100) -> list[InboxEvent]:
        async with self._shortcut_reader() as r:
            return await r.unapplied_events(limit=limit)

    async def record_inbox(
        self, system: str, event_id: str, payload: JSON, *, now: datetime | None = None
    ) -> bool:
        async with self.transaction() as tx:
            return await tx.record_inbox(system, event_id, payload, now=now)

    async def purge_inbox(self, *, before: datetime, limit: int | None = None) -> int:
        async with self.transaction() as tx:
            return await tx.purge_inbox(before=before, limit=limit)
