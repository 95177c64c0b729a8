"""The read model: each system's records as its feeds last told them, in memory and in
the store.

The store holds the truth (``read_records``, ``read_coverage``, ``read_feeds``); this
process keeps an index of it in memory, loaded at start, so a customer 360 reads its
records with dictionary look-ups and no round trip. Every change is committed to the
store first (with the feed position or the inbox marks it came with, in one unit) and
then applied to memory, under the same rule as the store's: an older version never
overwrites a newer one, so events, catch-up pages and read-throughs may arrive in any
order.

How old is a record? Not its last change: a customer nobody touched for a month is
current while the feed is. A slice (one customer's records of one kind) is *known
complete* at the later of the moment it was read whole and the moment every feed of its
system last reached the end; its age runs from then.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from canonical import System
from gateway.readmodel.changes import (
    Applied,
    Change,
    Entry,
    FeedState,
    SliceView,
    Source,
    change_of_row,
    version_at,
)
from gateway.readmodel.codec import encode
from gateway.readmodel.kinds import Kind
from gateway.store import ReadRow, Store, Transaction

__all__ = [
    "Applied",
    "Change",
    "Entry",
    "FeedState",
    "ReadModel",
    "SliceView",
    "Source",
    "change_of_row",
    "version_at",
]

log = logging.getLogger(__name__)

#: changes a slow subscriber may fall behind before the oldest are dropped for it
WATCH_BUFFER = 256
#: read-through answers waiting to be written; past it they are dropped (the next read
#: simply reads through again)
THROUGH_BUFFER = 1000


def _to_epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


_Through = tuple[list[Change], list[tuple[System, Kind, str, float]]]
Cover = Sequence[tuple[System, Kind, str, float]]
FeedAt = tuple[System, str, str | None, float | None]
#: ``on_commit(rows, cover, feed)``
Commit = Callable[[Sequence[ReadRow], Cover, FeedAt | None], None]


@dataclass(slots=True)
class _Watcher:
    customers: frozenset[tuple[System, str]] | None
    send: MemoryObjectSendStream[Applied]
    receive: MemoryObjectReceiveStream[Applied]


def _changed_fields(old: Any, new: Any) -> tuple[str, ...]:
    if old is None or new is None or type(old) is not type(new):
        return ()
    slots = getattr(type(new), "__slots__", ())
    return tuple(
        name
        for name in slots
        if not name.startswith("_") and getattr(old, name, None) != getattr(new, name, None)
    )


class ReadModel:
    """The records of every system, the slices read whole, the feeds' positions."""

    def __init__(
        self,
        store: Store,
        feeds: Mapping[System, Sequence[str]],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.clock = clock
        self._records: dict[tuple[System, Kind, str], Entry] = {}
        self._by_customer: dict[tuple[System, Kind, str], set[str]] = {}
        self._coverage: dict[tuple[System, Kind, str], float] = {}
        #: live (not deleted) records per system
        self._live: dict[System, int] = {}
        self.feeds: dict[tuple[System, str], FeedState] = {
            (system, name): FeedState(system, name)
            for system, names in feeds.items()
            for name in names
        }
        self._feed_names = {system: tuple(names) for system, names in feeds.items()}
        #: when each system last took an event, and how many
        self.last_event_at: dict[System, float] = {}
        self.events_applied: dict[System, int] = {}
        self._watchers: list[_Watcher] = []
        # read-throughs are written behind the answer: a bounded queue owned by the writer
        # task (``write_read_throughs``); without one running, offers are dropped
        self._through_send: MemoryObjectSendStream[_Through] | None = None
        self.through_dropped = 0
        self._through_pending = 0
        self._through_written = anyio.Event()
        #: told what each commit wrote, after it (rows, covered slices, feed position):
        #: the replication hands it to the other replicas; must not block
        self.on_commit: Commit | None = None

    # ------------------------------------------------------------ start-up

    async def load(self) -> None:
        """Fill memory from the store (records page by page, coverage, feed positions);
        again later, bring memory up to date (news from other replicas was lost): under
        the version rule, so only what memory misses is taken, and its watchers hear it."""
        after: tuple[str, str, str] | None = None
        while True:
            rows = await self.store.read_rows(after=after, limit=5000)
            self.take_remote([change_of_row(row) for row in rows])
            if len(rows) < 5000:
                break
            last = rows[-1]
            after = (last.system, last.kind, last.id)
        self.take_remote(
            (),
            cover=[
                (System(c.system), Kind(c.kind), c.customer, c.loaded_at.timestamp())
                for c in await self.store.read_coverage()
            ],
        )
        for feed in await self.store.read_feeds():
            state = self.feeds.get((System(feed.system), feed.feed))
            if state is not None:
                state.cursor = state.cursor or feed.cursor
                complete = _to_epoch(feed.complete_at)
                if complete is not None and (state.complete_at or 0.0) < complete:
                    state.complete_at = complete

    def _set(self, system: System, kind: Kind, record_id: str, entry: Entry) -> None:
        key = (system, kind, record_id)
        old = self._records.get(key)
        if old is not None and old.customer != entry.customer:
            self._by_customer.get((system, kind, old.customer), set()).discard(record_id)
        self._records[key] = entry
        self._by_customer.setdefault((system, kind, entry.customer), set()).add(record_id)
        was_live = old is not None and not old.deleted
        if was_live != (not entry.deleted):
            self._live[system] = self._live.get(system, 0) + (-1 if was_live else 1)

    # ------------------------------------------------------------ reads

    def complete_at(self, system: System) -> float | None:
        """When every feed of ``system`` last reached its end (None: not all have yet)."""
        moments = [self.feeds[(system, name)].complete_at for name in self._feed_names[system]]
        if not moments or any(m is None for m in moments):
            return None
        return min(m for m in moments if m is not None)

    def slice(self, system: System, kind: Kind, customer: str, *, many: bool) -> SliceView | None:
        """The customer's records of ``kind`` if the read model knows them whole, else None."""
        as_of = self.as_of(system, kind, customer)
        if as_of is None:
            return None
        ids = self._by_customer.get((system, kind, customer), ())
        entries = [self._records[(system, kind, i)] for i in ids]
        live = [e for e in entries if not e.deleted]
        newest = max(entries, key=lambda e: e.learned_at, default=None)
        source = newest.source if newest is not None else Source.CATCH_UP
        if many:
            return SliceView(tuple(e.value for e in live), as_of, source)
        return SliceView(live[0].value if live else None, as_of, source)

    def record(self, system: System, kind: Kind, record_id: str) -> Entry | None:
        entry = self._records.get((system, kind, record_id))
        return None if entry is None or entry.deleted else entry

    def records(self, system: System, kind: Kind) -> Iterable[tuple[str, Entry]]:
        """Every live record of one kind (for look-ups by business number)."""
        for (s, k, record_id), entry in self._records.items():
            if s is system and k is kind and not entry.deleted:
                yield record_id, entry

    def count(self, system: System) -> int:
        """Live records held (kept as records change: ``Query.systems`` and every metrics
        scrape ask)."""
        return self._live.get(system, 0)

    def lag(self, system: System) -> float | None:
        """Seconds since every feed of ``system`` was last known complete (None before the
        initial load finished): what ``Query.systems``, ``/readyz``, SLOs and metrics show."""
        complete = self.complete_at(system)
        return None if complete is None else max(0.0, self.clock() - complete)

    def as_of(self, system: System, kind: Kind, customer: str) -> float | None:
        """Since when ``customer``'s slice of ``kind`` is known complete (None: unknown)."""
        covered = self._coverage.get((system, kind, customer))
        complete = self.complete_at(system)
        if covered is None and complete is None:
            return None
        return max(covered or 0.0, complete or 0.0)

    # ------------------------------------------------------------ writes

    async def apply(
        self,
        changes: Sequence[Change],
        *,
        source: Source,
        cover: Sequence[tuple[System, Kind, str, float]] = (),
        feed: tuple[System, str, str | None, float | None] | None = None,
        events: Sequence[tuple[str, str]] = (),
        within: Callable[[Transaction], Awaitable[None]] | None = None,
    ) -> list[Applied]:
        """Commit ``changes`` (with the slices they cover, the feed position they reach
        and the inbox events they apply) in one unit, then take them into memory.
        ``within(tx)`` runs inside that unit (the flows the events start)."""
        now = self.clock()
        learned = datetime.fromtimestamp(now, UTC)
        rows = [
            ReadRow(
                system=str(c.system),
                kind=str(c.kind),
                id=c.id,
                customer=c.customer,
                version=c.version,
                data=None if c.deleted else encode(c.value),
                deleted=c.deleted,
                learned_at=learned,
                source=str(source),
            )
            for c in changes
            if self._newer(c)
        ]
        if rows or cover or feed is not None or events or within is not None:
            async with self.store.transaction() as tx:
                if rows:
                    await tx.put_read_rows(rows)
                for system, kind, customer, at in cover:
                    await tx.cover_read(
                        str(system), str(kind), customer, datetime.fromtimestamp(at, UTC)
                    )
                if feed is not None:
                    system, name, cursor, complete = feed
                    await tx.set_read_feed(
                        str(system),
                        name,
                        cursor=cursor,
                        complete_at=None
                        if complete is None
                        else datetime.fromtimestamp(complete, UTC),
                    )
                if events:
                    await tx.mark_applied(events)
                if within is not None:
                    await within(tx)
        applied = [a for c in changes if (a := self._take(c, source, now)) is not None]
        for system, kind, customer, at in cover:
            key = (system, kind, customer)
            self._coverage[key] = max(self._coverage.get(key, 0.0), at)
        if feed is not None:
            system, name, cursor, complete = feed
            state = self.feeds[(system, name)]
            state.cursor = cursor
            if complete is not None:
                state.complete_at = complete
        if events:
            for system_name, _ in events:
                system = System(system_name)
                self.last_event_at[system] = now
                self.events_applied[system] = self.events_applied.get(system, 0) + 1
        self._publish(applied)
        if self.on_commit is not None and (rows or cover or feed is not None):
            self.on_commit(rows, cover, feed)
        return applied

    def take_remote(
        self,
        changes: Sequence[tuple[Change, Source, float]],
        cover: Sequence[tuple[System, Kind, str, float]] = (),
        complete: Sequence[tuple[System, str, float]] = (),
    ) -> list[Applied]:
        """Take into memory what another replica (or the store) says was committed: each
        change with how and when it was learned, under the version rule; the slices it
        covered; the feeds it saw reach their end. Its watchers hear what changed."""
        applied = [a for c, source, at in changes if (a := self._take(c, source, at)) is not None]
        for system, kind, customer, at in cover:
            key = (system, kind, customer)
            self._coverage[key] = max(self._coverage.get(key, 0.0), at)
        for system, name, at in complete:
            state = self.feeds.get((system, name))
            if state is not None and (state.complete_at is None or state.complete_at < at):
                state.complete_at = at
        self._publish(applied)
        return applied

    def _take(self, c: Change, source: Source, at: float) -> Applied | None:
        """Take one change into memory if not older than what is held; the ``Applied``
        its watchers hear, or None if it was older or changed nothing a reader sees."""
        if not self._newer(c):
            return None  # a newer state arrived meanwhile (or was already held)
        old = self._records.get((c.system, c.kind, c.id))
        value = None if c.deleted else c.value
        self._set(
            c.system, c.kind, c.id, Entry(c.customer, value, c.version, at, source, c.deleted)
        )
        if old is not None and not old.deleted and not c.deleted and old.value == c.value:
            return None  # nothing a reader would see changed
        return Applied(
            c.system,
            c.kind,
            c.id,
            c.customer,
            source,
            at,
            c.deleted,
            old is None or old.deleted,
            _changed_fields(old.value if old is not None else None, c.value),
        )

    def _newer(self, change: Change) -> bool:
        old = self._records.get((change.system, change.kind, change.id))
        return old is None or change.version >= old.version

    def slice_changes(
        self,
        system: System,
        kind: Kind,
        customer: str,
        values: Iterable[Any],
        version: str,
    ) -> list[Change]:
        """The changes that make a customer's slice exactly ``values`` (read whole at
        ``version``): each record, and a delete for each local one no longer there."""
        changes = [Change.of(v, version) for v in values]
        seen = {c.id for c in changes if c.kind is kind}
        for record_id in list(self._by_customer.get((system, kind, customer), ())):
            entry = self._records[(system, kind, record_id)]
            if record_id not in seen and not entry.deleted:
                changes.append(Change(system, kind, record_id, customer, None, version, True))
        return changes

    def offer_read_through(
        self, changes: list[Change], cover: list[tuple[System, Kind, str, float]]
    ) -> None:
        """Queue what a read fetched to be written behind its answer; never blocks."""
        send = self._through_send
        if send is None:
            self.through_dropped += 1
            return
        try:
            send.send_nowait((changes, cover))
        except anyio.WouldBlock:
            self.through_dropped += 1
        else:
            self._through_pending += 1

    async def read_throughs_written(self, *, within: float) -> None:
        """Wait until every read-through offered so far is written (or dropped);
        TimeoutError after ``within`` seconds."""
        with anyio.fail_after(within):
            while self._through_pending > 0:
                await self._through_written.wait()

    async def write_read_throughs(self) -> None:
        """Write queued read-throughs, many per transaction, until cancelled."""
        send, receive = anyio.create_memory_object_stream[_Through](THROUGH_BUFFER)
        self._through_send = send
        try:
            with send, receive:
                async for changes, cover in receive:
                    batch_changes, batch_cover = list(changes), list(cover)
                    taken = 1
                    while len(batch_changes) < 2000:
                        try:
                            more, more_cover = receive.receive_nowait()
                        except anyio.WouldBlock:
                            break
                        batch_changes.extend(more)
                        batch_cover.extend(more_cover)
                        taken += 1
                    try:
                        await self.apply(
                            batch_changes, source=Source.READ_THROUGH, cover=batch_cover
                        )
                    except Exception:  # a cache fill: losing it costs one more read-through
                        log.exception("read-through of %d records not written", len(batch_changes))
                    finally:
                        self._through_pending -= taken
                        self._through_written.set()
                        self._through_written = anyio.Event()
        finally:
            if self._through_send is send:
                self._through_send = None

    # ------------------------------------------------------------ watching

    @property
    def watchers(self) -> int:
        """Open ``watch()`` blocks (subscriptions to customer events)."""
        return len(self._watchers)

    @asynccontextmanager
    async def watch(
        self, customers: Iterable[tuple[System, str]] | None = None
    ) -> AsyncIterator[MemoryObjectReceiveStream[Applied]]:
        """The changes applied from now on (to these customers' records only, if given).

        A subscriber that falls ``WATCH_BUFFER`` changes behind loses the oldest."""
        send, receive = anyio.create_memory_object_stream[Applied](WATCH_BUFFER)
        watcher = _Watcher(None if customers is None else frozenset(customers), send, receive)
        self._watchers.append(watcher)
        try:
            with send, receive:
                yield receive
        finally:
            self._watchers.remove(watcher)

    def _publish(self, applied: Sequence[Applied]) -> None:
        for watcher in self._watchers:
            for change in applied:
                if watcher.customers is not None and (
                    (change.system, change.customer) not in watcher.customers
                ):
                    continue
                try:
                    watcher.send.send_nowait(change)
                except anyio.WouldBlock:
                    try:  # drop the oldest: the newest state matters most
                        watcher.receive.receive_nowait()
                        watcher.send.send_nowait(change)
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        pass
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass
