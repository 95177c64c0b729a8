"""The transactional outbox and its lease: the part of the contract the dispatcher runs on.

Ordering (every backend keeps it):

- ``lease`` returns messages that are due (``available_at <= now``) and either pending or
  leased with an expired lease (the holder died: the message is recovered).
- Order per aggregate: a message is never leased while an earlier message (lower id) of
  the same ``aggregate_key`` is pending, leased or dead. So at most one message per
  aggregate is in flight, and messages of different aggregates go in parallel.
- Dead letters block their aggregate until ``replay`` (back to pending) or ``discard``.
  Chosen so a customer's later steps never overtake a failed earlier one (an ERP order
  must exist before the subscription that quotes its number); the cost is that one
  customer's queue waits for an operator, which ``outbox_status``/``list_messages`` show.
- Among eligible messages, lower ``priority`` first, then lower id.
- A message's lease is live until ``lease_expires_at``; ``complete``/``retry_later``/
  ``defer``/``dead_letter`` require the caller to still hold it (``LeaseLost``
  otherwise). An expired lease that nobody took over is still the caller's. Each lease
  is fenced by its ``owner`` token: a holder whose lease was taken over cannot settle it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime

from gateway.store.records import MessageStatus, NewMessage, OutboxMessage, OutboxStatus
from gateway.store.units import Units

__all__ = ["OutboxReads", "OutboxShortcuts", "OutboxWrites"]


class OutboxReads(ABC):
    @abstractmethod
    async def get_message(self, message_id: int) -> OutboxMessage | None:
        """One outbox message by id, or ``None``."""

    @abstractmethod
    async def list_messages(
        self,
        *,
        operation_id: str | None = None,
        status: MessageStatus | None = None,
        after: int | None = None,
        limit: int = 100,
    ) -> list[OutboxMessage]:
        """Messages in id order, optionally of one operation and/or in one status (the
        dead letters: ``status=MessageStatus.DEAD``); ``after``: only ids above it."""

    @abstractmethod
    async def outbox_status(self) -> OutboxStatus:
        """Message counts by system and status."""


class OutboxWrites(ABC):
    @abstractmethod
    async def enqueue(self, *messages: NewMessage, now: datetime | None = None) -> None:
        """Add pending messages, in this order (ids grow in commit order). Answers
        nothing, so a backend may hold the insert back; read ids with ``list_messages``
        or take them from ``lease``."""

    @abstractmethod
    async def lease(
        self,
        owner: str,
        *,
        limit: int,
        lease_seconds: float,
        now: datetime | None = None,
    ) -> list[OutboxMessage]:
        """Lease up to ``limit`` eligible messages to ``owner`` until now + ``lease_seconds``
        (see the ordering contract above); returns them leased, in lease order."""

    @abstractmethod
    async def complete(self, message_id: int, owner: str, *, now: datetime | None = None) -> None:
        """Mark a leased message done; write the saga step and the next messages in the
        same unit. ``LeaseLost`` if ``owner`` does not hold it (a backend may hold the
        write back: then it is raised by the unit's next statement or its end)."""

    @abstractmethod
    async def retry_later(
        self,
        message_id: int,
        owner: str,
        *,
        error: str,
        available_at: datetime,
        now: datetime | None = None,
    ) -> None:
        """A failed delivery: attempts + 1, back to pending until ``available_at``."""

    @abstractmethod
    async def defer(
        self,
        message_id: int,
        owner: str,
        *,
        available_at: datetime,
        reason: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Not tried (e.g. the breaker is open): back to pending until ``available_at``
        without counting an attempt."""

    @abstractmethod
    async def dead_letter(
        self, message_id: int, owner: str, *, reason: str, now: datetime | None = None
    ) -> None:
        """Give up: the message becomes a dead letter (attempts + 1) and blocks its aggregate."""

    @abstractmethod
    async def replay(self, message_id: int, *, now: datetime | None = None) -> OutboxMessage | None:
        """Dead letter back to pending, attempts reset, due now; answers it, or ``None``
        if there is no such dead letter."""

    @abstractmethod
    async def replay_all(self, *, now: datetime | None = None) -> int:
        """Replay every dead letter; returns how many."""

    @abstractmethod
    async def discard(
        self, message_id: int, *, now: datetime | None = None
    ) -> OutboxMessage | None:
        """Dead letter given up for good (unblocks its aggregate); answers it, or ``None``
        if there is no such dead letter."""

    @abstractmethod
    async def purge_outbox(self, *, before: datetime, limit: int | None = None) -> int:
        """Delete messages settled (done or discarded) before ``before``; returns how many.
        Pending, leased and dead messages are never purged."""


class OutboxShortcuts(Units):
    """The ``Store``'s one-call outbox reads and writes, each in its own unit."""

    async def get_message(self, message_id: int) -> OutboxMessage | None:
        async with self._shortcut_reader() as r:
            return await r.get_message(message_id)

    async def list_messages(
        self,
        *,
        operation_id: str | None = None,
        status: MessageStatus | None = None,
        after: int | None = None,
        limit: int = 100,
    ) -> list[OutboxMessage]:
        async with self._shortcut_reader() as r:
            return await r.list_messages(
                operation_id=operation_id, status=status, after=after, limit=limit
            )

    async def outbox_status(self) -> OutboxStatus:
        async with self._shortcut_reader() as r:
            return await r.outbox_status()

    async def enqueue(self, *messages: NewMessage, now: datetime | None = None) -> None:
        async with self.transaction() as tx:
            await tx.enqueue(*messages, now=now)

    async def lease(
        self, owner: str, *, limit: int, lease_seconds: float, now: datetime | None = None
    ) -> list[OutboxMessage]:
        async with self.transaction() as tx:
            return await tx.lease(owner, limit=limit, lease_seconds=lease_seconds, now=now)

    async def complete(self, message_id: int, owner: str, *, now: datetime | None = None) -> None:
        async with self.transaction() as tx:
            await tx.complete(message_id, owner, now=now)

    async def retry_later(
        self,
        message_id: int,
        owner: str,
        *,
        error: str,
        available_at: datetime,
        now: datetime | None = None,
    ) -> None:
        async with self.transaction() as tx:
            await tx.retry_later(message_id, owner, error=error, available_at=available_at, now=now)

    async def defer(
        self,
        message_id: int,
        owner: str,
        *,
        available_at: datetime,
        reason: str | None = None,
        now: datetime | None = None,
    ) -> None:
        async with self.transaction() as tx:
            await tx.defer(message_id, owner, available_at=available_at, reason=reason, now=now)

    async def dead_letter(
        self, message_id: int, owner: str, *, reason: str, now: datetime | None = None
    ) -> None:
        async with self.transaction() as tx:
            await tx.dead_letter(message_id, owner, reason=reason, now=now)

    async def replay(self, message_id: int, *, now: datetime | None = None) -> OutboxMessage | None:
        async with self.transaction() as tx:
            return await tx.replay(message_id, now=now)

    async def replay_all(self, *, now: datetime | None = None) -> int:
        async with self.transaction() as tx:
            return await tx.replay_all(now=now)

    async def discard(
        self, message_id: int, *, now: datetime | None = None
    ) -> OutboxMessage | None:
        async with self.transaction() as tx:
            return await tx.discard(message_id, now=now)

    async def purge_outbox(self, *, before: datetime, limit: int | None = None) -> int:
        async with self.transaction() as tx:
            return await tx.purge_outbox(before=before, limit=limit)


def in_lease_order(messages: Sequence[OutboxMessage]) -> list[OutboxMessage]:
    """Leased messages in lease order (lower priority, then lower id)."""
    return sorted(messages, key=lambda m: (m.priority, m.id))
