"""The cross-reference registry: which native ids in the four systems are one customer.

``link`` merges what is known (filling in ids, merging records that turn out to be one
customer into the oldest, whose aliases keep the merged-away canonical ids);
``resolve`` and ``get_xref`` answer from it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime

from canonical import System
from gateway.store.records import Page, XRefRecord
from gateway.store.units import Units

__all__ = ["XRefReads", "XRefShortcuts", "XRefWrites"]


class XRefReads(ABC):
    @abstractmethod
    async def resolve(self, system: System, native_id: str) -> str | None:
        """The canonical customer id for a system's native id, or ``None`` if unknown."""

    @abstractmethod
    async def get_xref(self, canonical_id: str) -> XRefRecord | None:
        """The customer's ids (a merged-away canonical id returns the surviving record),
        or ``None``."""

    @abstractmethod
    async def search_xref(self, text: str, *, limit: int = 20) -> list[XRefRecord]:
        """Customers whose canonical id or any system id equals ``text`` or starts with it,
        or whose name contains it (case-insensitive), ordered by canonical id."""

    @abstractmethod
    async def list_xrefs(self, *, limit: int = 100, after: str | None = None) -> Page[XRefRecord]:
        """Every customer ordered by canonical id; ``after`` is a previous ``next_cursor``."""


class XRefWrites(ABC):
    @abstractmethod
    async def link(
        self,
        ids: Mapping[System, str],
        *,
        canonical_id: str | None = None,
        name: str | None = None,
        now: datetime | None = None,
    ) -> XRefRecord:
        """Record that these native ids are one customer, merging what is known.

        Finds every record holding one of ``ids`` (or ``canonical_id``). None: a new record
        (``canonical_id`` or a fresh ``cw_`` id). One: its missing ids are filled in.
        Several: they are merged into the oldest, the others' canonical ids become its
        aliases. A system id that differs from one already registered for the same
        customer raises ``XRefConflict``. ``name``, if given, replaces the display name.
        """


class XRefShortcuts(Units):
    async def resolve(self, system: System, native_id: str) -> str | None:
        async with self._shortcut_reader() as r:
            return await r.resolve(system, native_id)

    async def get_xref(self, canonical_id: str) -> XRefRecord | None:
        async with self._shortcut_reader() as r:
            return await r.get_xref(canonical_id)

    async def search_xref(self, text: str, *, limit: int = 20) -> list[XRefRecord]:
        async with self._shortcut_reader() as r:
            return await r.search_xref(text, limit=limit)

    async def list_xrefs(self, *, limit: int = 100, after: str | None = None) -> Page[XRefRecord]:
        async with self._shortcut_reader() as r:
            return await r.list_xrefs(limit=limit, after=after)

    async def link(
        self,
        ids: Mapping[System, str],
        *,
        canonical_id: str | None = None,
        name: str | None = None,
        now: datetime | None = None,
    ) -> XRefRecord:
        async with self.transaction() as tx:
            return await tx.link(ids, canonical_id=canonical_id, name=name, now=now)
