"""What every part of the ``Store`` builds its one-call shortcuts on.

Each area of the interface (``operations``, ``outbox``, ``idempotency``, ...) declares its
reads, its writes and the ``Store``'s one-call versions of them; the last run in a reader
or a transaction of their own, which this base hands out.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.store.interface import Reader, Transaction

__all__ = ["Units"]


class Units(ABC):
    """Hands out units of work and read views (the ``Store`` implements these)."""

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """A unit of work: commits on normal exit, rolls back on an exception."""

    @abstractmethod
    def reader(self) -> AbstractAsyncContextManager[Reader]:
        """A consistent read view (does not block writers where the backend allows)."""

    def _shortcut_reader(self) -> AbstractAsyncContextManager[Reader]:
        """The reader a one-call read uses; a backend may return a cheaper one (no
        snapshot) since each such call is a single read."""
        return self.reader()
