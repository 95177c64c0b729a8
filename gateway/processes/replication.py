"""Replicas that see each other: what one commits, the others hear over the bus.

Two kinds of news, each published after its commit (never before), each applied by every
other replica:

- ``events.<system>``: what the read model committed (records with their version, how
  and when they were learned, the slices read whole, the feed that reached its end).
  Another replica takes the records into memory under the read model's version rule (an
  older state never overwrites a newer one, so duplicates and reordering are harmless)
  and its ``watch()`` subscribers (``Subscription.customerEvents``) hear what changed.
- ``operations``: operations' ids and statuses after committed changes (those committed
  while the previous message was being handed over travel together). A replica with
  someone watching one of them reads it from the store and wakes the watchers
  (``Subscription.operation``); the others do nothing.

A ``Gap`` (news lost: the bus was unreachable too long, or a replica fell behind) makes
the replica read the store again: the read model reloads under the version rule, and
every watched operation is read once more. The store stays the truth throughout; a
replica cut off from the bus keeps serving from it and catches up when the bus is back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import anyio
import orjson

from canonical import System
from gateway.bus import Bus, Gap
from gateway.readmodel.changes import Change, Source
from gateway.readmodel.codec import decode
from gateway.readmodel.kinds import Kind
from gateway.readmodel.model import Cover, FeedAt, ReadModel
from gateway.store import Operation, ReadRow, Store

__all__ = ["MAX_MESSAGE", "Replication"]

log = logging.getLogger(__name__)

#: bytes of records per bus message (NATS takes 1 MB by default); a commit that wrote more
#: is told in several messages
MAX_MESSAGE = 256 * 1024
#: operation changes told in one message at the most
OPERATIONS_PER_MESSAGE = 1000
#: operation changes waiting for the teller before they are handed to the bus at once
UNTOLD_MAX = 10_000
#: how long reading one operation from the store for its watchers may take
READ_DEADLINE = 5.0
#: how far back a replica's subscription starts before its read model loaded (clock skew
#: between replicas; what it hears twice the version rule ignores)
SKEW = 5.0


class Replication:
    """Publishes this replica's commits and applies the other replicas' (``run``)."""

    def __init__(self, bus: Bus, store: Store, model: ReadModel | None) -> None:
        self.bus = bus
        self.store = store
        self.model = model
        #: store re-reads after a gap (records reloaded, watched operations read again)
        self.gaps = 0
        #: operations committed and not yet told (id -> status), and the teller's wake-up
        self._untold: dict[str, str] = {}
        self._told = anyio.Event()

    def attach(self) -> None:
        """Tell the bus about every commit from now on."""
        self.store.notifier.listeners.append(self.operation_committed)
        if self.model is not None:
            self.model.on_commit = self.records_committed

    # ------------------------------------------------------------ publishing

    # Both run right after a commit, in the committer's call: whatever goes wrong here is
    # logged, never raised into a unit of work that has already committed (the other
    # replicas then miss that news until a gap or the subscription's own poll).

    def operation_committed(self, operation: Operation) -> None:
        # told by ``_tell_operations`` at its next turn: the changes committed meanwhile
        # travel together (one message per turn, not one per change, under load)
        self._untold[operation.id] = str(operation.status)
        self._told.set()
        if len(self._untold) >= UNTOLD_MAX:  # the teller is not running: hand them over
            self._tell_untold()

    def _tell_untold(self) -> None:
        untold, self._untold = list(self._untold.items()), {}
        for start in range(0, len(untold), OPERATIONS_PER_MESSAGE):
            chunk = untold[start : start + OPERATIONS_PER_MESSAGE]
            try:
                self.bus.publish("operations", orjson.dumps({"operations": chunk}))
            except Exception:
                log.exception("%d operation changes not told to the other replicas", len(chunk))

    async def _tell_operations(self) -> None:
        try:
            while True:
                await self._told.wait()
                self._told = anyio.Event()
                self._tell_untold()
                await anyio.lowlevel.checkpoint()  # let more commits gather meanwhile
        finally:
            self._tell_untold()  # at shutdown: into the bus's queue, which drains on close

    def records_committed(self, rows: Sequence[ReadRow], cover: Cover, feed: FeedAt | None) -> None:
        try:
            self._records_committed(rows, cover, feed)
        except Exception:
            log.exception("%d read-model records not told to the other replicas", len(rows))

    def _records_committed(
        self, rows: Sequence[ReadRow], cover: Cover, feed: FeedAt | None
    ) -> None:
        by_system: dict[str, dict[str, Any]] = {}

        def part(system: str) -> dict[str, Any]:
            return by_system.setdefault(system, {"rows": [], "cover": [], "complete": []})

        for row in rows:
            part(row.system)["rows"].append(
                [
                    row.kind,
                    row.id,
                    row.customer,
                    row.version,
                    row.data,
                    row.deleted,
                    row.source,
                    row.learned_at.timestamp(),
                ]
            )
        for system_of, kind, customer, at in cover:
            part(str(system_of))["cover"].append([str(kind), customer, at])
        if feed is not None and feed[3] is not None:
            part(str(feed[0]))["complete"].append([feed[1], feed[3]])
        for name, message in by_system.items():
            for chunk in _chunks(message):
                self.bus.publish(f"events.{name}", chunk)

    # ------------------------------------------------------------ applying

    async def run(self, since: float) -> None:
        """Apply the other replicas' news from ``since`` until cancelled."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._tell_operations)
            tg.start_soon(self._operations, since - SKEW)
            if self.model is not None:
                tg.start_soon(self._records, self.model, since - SKEW)

    async def _operations(self, since: float) -> None:
        notifier = self.store.notifier
        async with self.bus.subscribe("operations", since=since) as news:
            async for item in news:
                if isinstance(item, Gap):
                    self.gaps += 1
                    ids = notifier.watched()
                else:
                    told = orjson.loads(item.data)["operations"]
                    ids = [i for i, _status in told if notifier.watching(i)]
                for operation_id in ids:
                    try:
                        with anyio.fail_after(READ_DEADLINE):
                            operation = await self.store.get_operation(operation_id)
                    except Exception:  # the subscription's own poll covers it
                        log.exception("could not read operation %s for its watchers", operation_id)
                        continue
                    if operation is not None:
                        notifier.deliver(operation)

    async def _records(self, model: ReadModel, since: float) -> None:
        async with self.bus.subscribe("events.>", since=since) as news:
            async for item in news:
                if isinstance(item, Gap):
                    self.gaps += 1
                    log.warning("news on %s was lost: reloading the read model", item.subject)
                    await model.load()
                    continue
                system = System(item.subject.split(".", 1)[1])
                message = orjson.loads(item.data)
                model.take_remote(
                    [_change(system, row) for row in message["rows"]],
                    cover=[(system, Kind(k), c, at) for k, c, at in message["cover"]],
                    complete=[(system, name, at) for name, at in message["complete"]],
                )


def _change(system: System, row: list[Any]) -> tuple[Change, Source, float]:
    kind, record_id, customer, version, data, deleted, source, learned_at = row
    value = None if data is None else decode(data)
    change = Change(system, Kind(kind), record_id, customer, value, version, deleted)
    return change, Source(source), learned_at


def _chunks(message: dict[str, Any]) -> list[bytes]:
    """``message`` as JSON, split by rows into parts of at most ``MAX_MESSAGE`` bytes
    (a single larger row travels alone)."""
    whole = orjson.dumps(message)
    if len(whole) <= MAX_MESSAGE or len(message["rows"]) <= 1:
        return [whole]
    half = len(message["rows"]) // 2
    first = {**message, "rows": message["rows"][:half]}
    second = {"rows": message["rows"][half:], "cover": [], "complete": []}
    return _chunks(first) + _chunks(second)
