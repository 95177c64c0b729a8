"""What the read model holds and tells: records' changes, entries, applied changes, slices
and feed states (the types; ``gateway.readmodel.model`` holds the model)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from canonical import System
from gateway.readmodel.codec import decode
from gateway.readmodel.kinds import Kind, identify
from gateway.store import ReadRow

__all__ = [
    "Applied",
    "Change",
    "Entry",
    "FeedState",
    "SliceView",
    "Source",
    "change_of_row",
    "version_at",
]


class Source(enum.StrEnum):
    """How the read model learned a record."""

    EVENTS = "EVENTS"  # a vendor's webhook
    CATCH_UP = "CATCH_UP"  # the vendor's change feed (or its initial listing)
    READ_THROUGH = "READ_THROUGH"  # a read that found nothing local asked the vendor


def version_at(moment: float) -> str:
    """The sortable version text for a unix time (fixed width: text order is time order)."""
    return f"{moment:018.6f}"


@dataclass(frozen=True, slots=True)
class Change:
    """One record's new state as a feed, an event or a read reported it."""

    system: System
    kind: Kind
    id: str
    customer: str
    value: Any  # the canonical record; None when deleted
    version: str
    deleted: bool = False

    @classmethod
    def of(cls, value: Any, version: str) -> Change:
        kind, record_id, customer = identify(value)
        return cls(value.system, kind, record_id, customer, value, version)


@dataclass(slots=True)
class Entry:
    customer: str
    value: Any
    version: str
    learned_at: float
    source: Source
    deleted: bool


@dataclass(frozen=True, slots=True)
class Applied:
    """A change the read model took (what ``Subscription.customerEvents`` streams)."""

    system: System
    kind: Kind
    id: str
    customer: str
    source: Source
    at: float
    deleted: bool
    created: bool
    changed_fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SliceView:
    """A customer's records of one kind, and since when they are known complete."""

    value: Any  # tuple of records (``many``), else the record or None
    as_of: float
    source: Source | None


@dataclass(slots=True)
class FeedState:
    """One change feed's position and health, as ``Query.systems`` shows it."""

    system: System
    feed: str
    cursor: str | None = None
    complete_at: float | None = None
    last_pass_at: float | None = None
    last_error: str | None = None
    passes: int = 0


def change_of_row(row: ReadRow) -> tuple[Change, Source, float]:
    """A stored row as a change, how it was learned and when (``ReadModel.take_remote``)."""
    value = None if row.data is None else decode(row.data)
    system, kind = System(row.system), Kind(row.kind)
    change = Change(system, kind, row.id, row.customer, value, row.version, row.deleted)
    return change, Source(row.source), row.learned_at.timestamp()
