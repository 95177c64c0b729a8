"""The read model's records: what the systems hold, kept by the change feeds and events,
with which customer slices were read whole and where each feed was read up to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime

from gateway.store.records import CoverageRow, FeedRow, ReadRow
from gateway.store.units import Units

__all__ = ["ReadModelReads", "ReadModelShortcuts", "ReadModelWrites"]


class ReadModelReads(ABC):
    @abstractmethod
    async def read_rows(
        self,
        *,
        system: str | None = None,
        after: tuple[str, str, str] | None = None,
        limit: int = 10_000,
    ) -> list[ReadRow]:
        """Read-model records (deleted ones too) ordered by (system, kind, id), from just
        after ``after``: a process loads its memory index from these pages at start."""

    @abstractmethod
    async def read_coverage(self) -> list[CoverageRow]:
        """Every customer slice that was read whole, and when."""

    @abstractmethod
    async def read_feeds(self) -> list[FeedRow]:
        """Where every system's change feeds were read up to."""


class ReadModelWrites(ABC):
    """Writes that answer nothing: a backend may hold them all back, so a flush of many
    records costs one round trip."""

    @abstractmethod
    async def put_read_rows(self, rows: Sequence[ReadRow]) -> None:
        """Upsert records; a row whose ``version`` is older than the stored one's is
        ignored (an older state never overwrites a newer one)."""

    @abstractmethod
    async def cover_read(self, system: str, kind: str, customer: str, loaded_at: datetime) -> None:
        """Record that ``customer``'s whole slice of ``kind`` was read at ``loaded_at``
        (a later time wins)."""

    @abstractmethod
    async def set_read_feed(
        self,
        system: str,
        feed: str,
        *,
        cursor: str | None,
        complete_at: datetime | None,
        now: datetime | None = None,
    ) -> None:
        """Store a change feed's position (with the records it covered, in one unit)."""


class ReadModelShortcuts(Units):
    async def read_rows(
        self,
        *,
        system: str | None = None,
        after: tuple[str, str, str] | None = None,
        limit: int = 10_000,
    ) -> list[ReadRow]:
        async with self._shortcut_reader() as r:
            return await r.read_rows(system=system, after=after, limit=limit)

    async def read_coverage(self) -> list[CoverageRow]:
        async with self._shortcut_reader() as r:
            return await r.read_coverage()

    async def read_feeds(self) -> list[FeedRow]:
        async with self._shortcut_reader() as r:
            return await r.read_feeds()
