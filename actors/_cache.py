"""The last-known-good cache: recent successful reads, to fall back on when a system fails."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import anyio

__all__ = ["LastKnownGood"]


class LastKnownGood:
    """Bounded LRU of read results keyed by message, each with the time it was fetched.

    Entries older than ``ttl`` seconds are never answered (and are dropped when seen).
    """

    def __init__(
        self, *, size: int, ttl: float, clock: Callable[[], float] = anyio.current_time
    ) -> None:
        self.size = size
        self.ttl = ttl
        #: seconds on the asks' clock; its actor sets its own, lookup-free one once running
        self.clock = clock
        self._entries: OrderedDict[Hashable, tuple[Any, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: Hashable, value: Any) -> None:
        if self.size <= 0:
            return
        self._entries[key] = (value, self.clock())
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def get(self, key: Hashable) -> tuple[Any, float] | None:
        """``(value, age_seconds)``, or None when absent or older than the TTL."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, stored = entry
        age = self.clock() - stored
        if age > self.ttl:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value, age
