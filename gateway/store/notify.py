"""In-process notification of operation changes, for ``Subscription.operation(id:)``.

The store publishes an ``Operation`` after the transaction that changed it commits (never
before: a watcher must not see a status that a rollback takes back). Each watcher holds
one slot with the latest version plus an event, so memory stays bounded whatever the
publish rate: a consumer slower than the changes sees the newest state, not every
intermediate one. Operation statuses only move forward, so the final status is always
delivered.

Only changes committed through this process's store are published here. Listeners
(``listeners``) hear each one too: the runtime's replication tells the other replicas
over the bus, and hands what they committed to ``deliver`` (watchers only, no listener:
news from elsewhere is not told again). A CLI replay from a process outside the bus is
not seen (the GraphQL layer polls ``get_operation`` as a fallback).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Self

import anyio

from gateway.store.records import Operation

__all__ = ["OperationNotifier", "OperationWatch", "TooManyWatchers"]


class TooManyWatchers(RuntimeError):
    """More watchers than ``max_watchers``: a client is opening subscriptions in a loop."""


class OperationWatch:
    """One subscriber's view of one operation; async-iterate to get each new version."""

    __slots__ = ("_changed", "_closed", "_latest", "operation_id")

    def __init__(self, operation_id: str) -> None:
        self.operation_id = operation_id
        self._latest: Operation | None = None
        self._changed = anyio.Event()
        self._closed = False

    def _offer(self, operation: Operation) -> None:
        self._latest = operation
        self._changed.set()

    def _close(self) -> None:
        self._closed = True
        self._changed.set()

    async def _take(self) -> Operation | None:
        await self._changed.wait()
        if self._closed and self._latest is None:
            return None
        self._changed = anyio.Event()
        latest, self._latest = self._latest, None
        return latest

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Operation:
        # Waits without a deadline on purpose: a subscription lasts as long as its client;
        # the transport's own keep-alive and the store's close end it.
        operation = await self._take()
        if operation is None:
            raise StopAsyncIteration
        return operation


class OperationNotifier:
    """Fan-out of committed operation changes to watchers keyed by operation id."""

    def __init__(self, *, max_watchers: int = 10_000) -> None:
        self._watchers: dict[str, set[OperationWatch]] = {}
        self._count = 0
        self._max = max_watchers
        self._closed = False
        #: called with each committed version after the watchers (must not block)
        self.listeners: list[Callable[[Operation], None]] = []

    @asynccontextmanager
    async def watch(self, operation_id: str) -> AsyncIterator[OperationWatch]:
        """Register a watcher for the duration of the block."""
        if self._count >= self._max:
            raise TooManyWatchers(
                f"{self._count} operation watchers are open (limit {self._max}); "
                "close finished subscriptions or raise max_watchers"
            )
        watch = OperationWatch(operation_id)
        if self._closed:
            watch._close()
        self._watchers.setdefault(operation_id, set()).add(watch)
        self._count += 1
        try:
            yield watch
        finally:
            self._count -= 1
            group = self._watchers.get(operation_id)
            if group is not None:
                group.discard(watch)
                if not group:
                    del self._watchers[operation_id]

    def publish(self, operation: Operation) -> None:
        """Hand a version this process committed to every watcher of that operation and
        to the listeners (never blocks)."""
        self.deliver(operation)
        for listener in self.listeners:
            listener(operation)

    def deliver(self, operation: Operation) -> None:
        """Hand a committed version to every watcher of that operation (never blocks)."""
        for watch in self._watchers.get(operation.id, ()):
            watch._offer(operation)

    def watched(self) -> list[str]:
        """The operation ids someone is watching now."""
        return list(self._watchers)

    def watching(self, operation_id: str) -> bool:
        return operation_id in self._watchers

    def close(self) -> None:
        """End every watcher's iteration (the store is closing)."""
        self._closed = True
        for group in self._watchers.values():
            for watch in group:
                watch._close()
