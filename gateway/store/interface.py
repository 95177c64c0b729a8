"""The store interface: what every backend (SQLite, PostgreSQL) provides.

Three roles, composed from one module per area of the contract:

- ``Reader``: consistent reads. Records out; a single record that is not there is
  ``None`` (never an exception), a list that is empty is ``[]``.
- ``Transaction``: a ``Reader`` plus every write, as one unit of work. Records in. The
  process layer writes an operation, its saga steps, its first outbox messages and the
  idempotency record in one ``async with store.transaction() as tx:`` block; leaving the
  block commits, an exception rolls everything back.
- ``Store``: opens and closes the backend (an async context manager), hands out readers
  and transactions, and offers one-call versions of the reads and common writes (each in
  its own reader or transaction): ``store.get_operation(...)``, ``store.lease(...)``, ...

| area | module |
|---|---|
| operations and saga steps | ``gateway.store.operations`` |
| outbox and its lease (the ordering contract) | ``gateway.store.outbox`` |
| idempotency records | ``gateway.store.idempotency`` |
| inbox | ``gateway.store.inbox`` |
| audit trail | ``gateway.store.audit`` |
| cross-references | ``gateway.store.xref`` |
| read-model records | ``gateway.store.read_model`` |
| reconciliation runs | ``gateway.store.reconciliation`` |

Held-back writes: a write whose answer the caller already knows (or that answers
nothing) may be sent by a backend with the unit's next statement or at its end, to save a
round trip. An error it meets (a constraint, ``LeaseLost``, ``StaleOperation``) then
surfaces there instead of at the call, still inside the ``async with`` block and always
before anything commits.

Operation change notifications: after a transaction that changed operations commits,
the store publishes each changed ``Operation`` to in-process watchers
(``Store.watch_operation``); see ``gateway.store.notify``. Changes made by another
process sharing the database are not seen.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from types import TracebackType
from typing import Self, TypeVar

import anyio

from gateway.store.audit import AuditReads, AuditShortcuts, AuditWrites
from gateway.store.idempotency import IdempotencyReads, IdempotencyShortcuts, IdempotencyWrites
from gateway.store.inbox import InboxReads, InboxShortcuts, InboxWrites
from gateway.store.notify import OperationNotifier, OperationWatch
from gateway.store.operations import OperationReads, OperationShortcuts, OperationWrites
from gateway.store.outbox import OutboxReads, OutboxShortcuts, OutboxWrites
from gateway.store.read_model import ReadModelReads, ReadModelShortcuts, ReadModelWrites
from gateway.store.reconciliation import (
    ReconciliationReads,
    ReconciliationShortcuts,
    ReconciliationWrites,
)
from gateway.store.records import Operation, OutboxMessage, utcnow
from gateway.store.xref import XRefReads, XRefShortcuts, XRefWrites

__all__ = ["Reader", "Store", "Transaction"]


_T = TypeVar("_T")


class Reader(
    OperationReads,
    OutboxReads,
    IdempotencyReads,
    InboxReads,
    AuditReads,
    XRefReads,
    ReadModelReads,
    ReconciliationReads,
):
    """Read access to the store. Inside a transaction, reads see its own writes."""


class Transaction(
    Reader,
    OperationWrites,
    OutboxWrites,
    IdempotencyWrites,
    InboxWrites,
    AuditWrites,
    XRefWrites,
    ReadModelWrites,
    ReconciliationWrites,
):
    """A unit of work: every write commits together or not at all (see the module
    docstring on held-back writes)."""


class Store(
    OperationShortcuts,
    OutboxShortcuts,
    IdempotencyShortcuts,
    InboxShortcuts,
    AuditShortcuts,
    XRefShortcuts,
    ReadModelShortcuts,
    ReconciliationShortcuts,
):
    """A store backend. Use as ``async with open_store(url) as store:``.

    Lifecycle: unopened -> open (``__aenter__``) -> closed (``__aexit__``); a closed
    store cannot be reopened and raises ``StoreClosed`` when used.
    """

    #: how many unfinished operations ``recent_operation`` remembers (oldest forgotten)
    REMEMBERED_OPERATIONS = 4096

    def __init__(self, *, clock: Callable[[], datetime] = utcnow) -> None:
        #: where ``now`` comes from when a call does not pass one (tests inject a clock)
        self.clock = clock
        self.notifier = OperationNotifier()
        self._outbox_event: anyio.Event | None = None
        #: operations this process committed last, oldest first (``recent_operation``)
        self._recent: dict[str, Operation] = {}

    # ------------------------------------------------------------ lifecycle

    @abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema to the current version."""

    @abstractmethod
    async def close(self) -> None:
        """Close connections; waits for running transactions' connections to be released."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abstractmethod
    async def schema_version(self) -> int:
        """The migration version the database is at."""

    # ------------------------------------------------------------ this process's memory

    def recent_operation(self, operation_id: str) -> Operation | None:
        """The version of an operation this process last committed, if still remembered.

        A hint, not a read: another process may have changed the row since. Use it only
        with ``Transaction.update_operation(it, ..., verify=True)``, which checks that the
        row is still this version. It saves the dispatcher a read round trip inside its
        unit of work for each step.
        """
        return self._recent.get(operation_id)

    def _committed(self, operations: Iterable[Operation], outbox_touched: bool) -> None:
        """Backends call this after a commit (never before: a watcher must not see what a
        rollback takes back), with the operations it changed and whether it touched the
        outbox: what the commit makes known in this process."""
        for operation in operations:
            self._remember(operation)
            self.notifier.publish(operation)
        if outbox_touched:
            self._outbox_changed()

    def _remember(self, operation: Operation) -> None:
        recent = self._recent
        recent.pop(operation.id, None)
        if operation.status.terminal:
            return  # no more steps will ask for it
        recent[operation.id] = operation
        if len(recent) > self.REMEMBERED_OPERATIONS:
            del recent[next(iter(recent))]

    def watch_operation(self, operation_id: str) -> AbstractAsyncContextManager[OperationWatch]:
        """Watch one operation: ``async with store.watch_operation(id) as watch:`` then
        ``async for op in watch:`` yields the operation after each committed change
        (coalescing changes a slow consumer missed into the latest)."""
        return self.notifier.watch(operation_id)

    def outbox_event(self) -> anyio.Event:
        """An event set when a transaction of this process commits something that may make
        a message leasable (enqueue, complete, replay, discard). Take it *before* a lease
        that comes back empty, then wait on it with a deadline (the poll interval, which
        also covers retries coming due and other processes' writes)::

            woken = store.outbox_event()
            if not await store.lease(...):
                with anyio.move_on_after(poll_interval):
                    await woken.wait()
        """
        if self._outbox_event is None:
            self._outbox_event = anyio.Event()
        return self._outbox_event

    def _outbox_changed(self) -> None:
        if self._outbox_event is not None:
            self._outbox_event.set()
            self._outbox_event = None

    # ------------------------------------------------------------ the dispatcher's unit

    async def run_unit(
        self,
        work: Callable[[Transaction], Awaitable[_T]],
        *,
        owner: str | None = None,
        lease_limit: int = 0,
        lease_seconds: float = 30.0,
    ) -> tuple[_T, list[OutboxMessage]]:
        """``work`` as one unit of work and then, in the same unit, a lease of up to
        ``lease_limit`` messages for ``owner``; answers ``work``'s value and the leased.

        The same as a ``transaction()`` block doing both, but a backend may run units
        whose writes need no answer before their end (no reads, every write held back:
        the dispatcher's bookkeeping of a delivered step) together with other such units,
        in one round trip and one commit; the SQLite backend does (``sqlite.held``).
        ``work`` may then be called more than once, so it must change nothing but ``tx``.
        """
        async with self.transaction() as tx:
            value = await work(tx)
            leased: list[OutboxMessage] = []
            if owner is not None and lease_limit > 0:
                leased = await tx.lease(owner, limit=lease_limit, lease_seconds=lease_seconds)
        return value, leased
