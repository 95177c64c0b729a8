"""The store interface: what every backend (SQLite now, PostgreSQL next) provides.

Three roles, eventsourcing style:

- ``Reader``: consistent reads (operations, steps, outbox, idempotency, audit, xref).
- ``Transaction``: a ``Reader`` plus every write, as one unit of work. The process layer
  writes an operation, its saga steps, its first outbox messages and the idempotency
  record in one ``async with store.transaction() as tx:`` block; leaving the block
  commits, an exception rolls everything back.
- ``Store``: opens and closes the backend (an async context manager), hands out readers
  and transactions, and offers one-call shortcuts (each in its own transaction) for the
  common single-step calls: ``store.lease(...)``, ``store.replay(...)``, ...

Outbox ordering contract (every backend):

- ``lease`` returns messages that are due (``available_at <= now``) and either pending or
  leased with an expired lease (the holder died: the message is recovered).
- Order per aggregate: a message is never leased while an earlier message (lower id) of
  the same ``aggregate_key`` is pending, leased or dead. So at most one message per
  aggregate is in flight, and messages of different aggregates go in parallel.
- Dead letters block their aggregate until ``replay`` (back to pending) or ``discard``.
  Chosen so a customer's later steps never overtake a failed earlier one (an ERP order
  must exist before the subscription that quotes its number); the cost is that one
  customer's queue waits for an operator, which ``outbox_status``/``list_dead`` show.
- Among eligible messages, lower ``priority`` first, then lower id.
- A message's lease is live until ``lease_expires_at``; ``complete``/``retry_later``/
  ``defer``/``dead_letter`` require the caller to still own it (``LeaseLost`` otherwise).
  An expired lease that nobody took over is still the caller's.

Operation change notifications: after a transaction that changed operations commits,
the store publishes each changed ``Operation`` to in-process watchers
(``Store.watch_operation``); see ``gateway.store.notify``. Changes made by another
process sharing the database are not seen (a later backend may use LISTEN/NOTIFY).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self, TypeVar

import anyio

from canonical import System
from gateway.store.errors import RecordNotFound, StaleOperation
from gateway.store.notify import OperationNotifier, OperationWatch
from gateway.store.records import (
    DEFAULT_IDEMPOTENCY_TTL,
    JSON,
    UNSET,
    AuditEntry,
    CoverageRow,
    DriftFinding,
    FeedRow,
    IdempotencyRecord,
    IdempotencyResult,
    InboxEvent,
    NewAudit,
    NewMessage,
    Operation,
    OperationStatus,
    OutboxMessage,
    OutboxStatus,
    Page,
    ReadRow,
    ReconciliationRun,
    SagaStep,
    StepStatus,
    Unset,
    XRefRecord,
    utcnow,
)

__all__ = ["Reader", "Store", "Transaction"]


_T = TypeVar("_T")


class Reader(ABC):
    """Read access to the store. Inside a transaction, reads see its own writes."""

    # ------------------------------------------------------------ operations

    @abstractmethod
    async def get_operation(self, operation_id: str) -> Operation | None:
        """The operation, or ``None`` if there is no such id."""

    @abstractmethod
    async def list_operations(
        self,
        *,
        status: OperationStatus | None = None,
        aggregate_key: str | None = None,
        correlation_id: str | None = None,
        limit: int = 50,
        after: str | None = None,
    ) -> Page[Operation]:
        """Operations, newest first, optionally filtered.

        ``after`` is a previous page's ``next_cursor``."""

    async def find_holding(
        self,
        *,
        aggregate_key: str,
        kind: str,
        field: str,
        value: str,
        settled: Collection[OperationStatus],
    ) -> Operation | None:
        """The newest operation of ``kind`` for ``aggregate_key`` whose input ``field`` is
        ``value`` and whose status is not in ``settled``: who holds a business key (a deal
        being closed, a renewal running). This default pages through the customer's
        operations; a backend answers it with one indexed query instead."""
        after: str | None = None
        while True:
            page = await self.list_operations(aggregate_key=aggregate_key, limit=200, after=after)
            for operation in page.items:
                if (
                    operation.kind == kind
                    and operation.status not in settled
                    and isinstance(operation.input, Mapping)
                    and operation.input.get(field) == value
                ):
                    return operation
            if page.next_cursor is None:
                return None
            after = page.next_cursor

    @abstractmethod
    async def get_steps(self, operation_id: str) -> list[SagaStep]:
        """The operation's saga steps in the order they were first written."""

    # ------------------------------------------------------------ outbox

    @abstractmethod
    async def get_message(self, message_id: int) -> OutboxMessage | None:
        """One outbox message by id."""

    @abstractmethod
    async def messages_for(self, operation_id: str) -> list[OutboxMessage]:
        """Every outbox message of an operation, in id order."""

    @abstractmethod
    async def list_dead(self, *, limit: int = 100, after: int | None = None) -> list[OutboxMessage]:
        """Dead letters in id order (``after``: only ids greater than this)."""

    @abstractmethod
    async def outbox_status(self) -> OutboxStatus:
        """Message counts by system and status."""

    # ------------------------------------------------------------ idempotency

    @abstractmethod
    async def get_idempotency(
        self, client_id: str, key: str, *, now: datetime | None = None
    ) -> IdempotencyRecord | None:
        """The live record for (client, key); an expired record reads as ``None``."""

    # ------------------------------------------------------------ inbox, audit

    @abstractmethod
    async def get_inbox(self, system: str, event_id: str) -> InboxEvent | None:
        """A received webhook event, if it was recorded."""

    @abstractmethod
    async def audit_for(self, correlation_id: str) -> list[AuditEntry]:
        """Audit entries of one correlation id, oldest first."""

    @abstractmethod
    async def audit_for_subject(self, subject: str, *, limit: int = 100) -> list[AuditEntry]:
        """Audit entries about one subject (e.g. ``operation:<id>``), oldest first."""

    @abstractmethod
    async def audit_trace(
        self, correlation_ids: Sequence[str], *, actor: str | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        """The entries of these correlation ids in time order (``at``, then id), at most
        ``limit`` (the oldest); with ``actor``, only the entries that actor caused.

        Time, not id alone: vendor calls are written in batches, so a call's id may be
        higher than that of the saga step it served, while its ``at`` is when it began."""

    @abstractmethod
    async def audit_correlations(
        self, keys: Sequence[str], *, actor: str | None = None, limit: int = 20
    ) -> list[str]:
        """The correlation ids of entries found by any of these business keys (see
        ``records.audit_keys``), the most recently active first; with ``actor``, only
        through entries that actor caused."""

    @abstractmethod
    async def audit_by_keys(
        self, keys: Sequence[str], *, before: int | None = None, limit: int = 20
    ) -> list[AuditEntry]:
        """Entries found by any of these business keys, newest (highest id) first, with
        ids below ``before`` when given: one page of a customer's history."""

    # ------------------------------------------------------------ cross-references

    @abstractmethod
    async def resolve(self, system: System, native_id: str) -> str | None:
        """The canonical customer id for a system's native id, or ``None`` if unknown."""

    @abstractmethod
    async def get_xref(self, canonical_id: str) -> XRefRecord | None:
        """The customer's ids; a merged-away canonical id returns the surviving record."""

    @abstractmethod
    async def search_xref(self, text: str, *, limit: int = 20) -> list[XRefRecord]:
        """Customers whose canonical id or any system id equals ``text`` or starts with it,
        or whose name contains it (case-insensitive), ordered by canonical id."""

    @abstractmethod
    async def list_xrefs(self, *, limit: int = 100, after: str | None = None) -> Page[XRefRecord]:
        """Every customer ordered by canonical id; ``after`` is a previous ``next_cursor``."""

    # ------------------------------------------------------------ the read model

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

    @abstractmethod
    async def unapplied_events(self, *, limit: int = 100) -> list[InboxEvent]:
        """Inbox events the read model has not applied yet, oldest received first."""

    # ------------------------------------------------------------ reconciliation

    @abstractmethod
    async def reconciliation_runs(self, *, limit: int = 20) -> list[ReconciliationRun]:
        """The latest runs, newest first."""

    @abstractmethod
    async def reconciliation_findings(
        self, run_id: int, *, limit: int = 100, after: int | None = None
    ) -> Page[DriftFinding]:
        """A run's findings in order; ``after`` is a previous page's ``next_cursor``."""


class Transaction(Reader):
    """A unit of work: every write below commits together or not at all.

    A backend may hold back a write whose answer it already knows (an operation insert,
    saga steps, completing a key claimed in the same unit) and send it with the unit's
    next statement or at its end. A constraint error from such a write (a reused
    operation id) then surfaces there instead of at the call, still inside the
    ``async with`` block and always before anything commits.
    """

    # ------------------------------------------------------------ operations and steps

    @abstractmethod
    async def create_operation(
        self,
        *,
        id: str,
        kind: str,
        correlation_id: str,
        client_id: str,
        aggregate_key: str,
        input: JSON,
        status: OperationStatus = OperationStatus.PENDING,
        now: datetime | None = None,
    ) -> Operation:
        """Insert a new operation (an existing id is an integrity error)."""

    @abstractmethod
    async def update_operation(
        self,
        operation_id: str,
        *,
        status: OperationStatus | None = None,
        result: JSON | Unset = UNSET,
        error: str | None | Unset = UNSET,
        now: datetime | None = None,
    ) -> Operation:
        """Change status/result/error (arguments not given are kept); watchers see it
        after commit. Raises ``RecordNotFound`` for an unknown id."""

    @abstractmethod
    async def upsert_step(
        self,
        operation_id: str,
        name: str,
        *,
        status: StepStatus,
        result: JSON | Unset = UNSET,
        error: str | None | Unset = UNSET,
        add_attempt: bool = False,
        now: datetime | None = None,
    ) -> SagaStep:
        """Create or update one saga step; ``add_attempt`` adds one to its attempt count."""

    # The writes below answer nothing the caller does not already know, so a backend may
    # hold them back like the writes the class docstring names (one round trip less
    # each): an error they meet (``LeaseLost``, ``RecordNotFound``) then surfaces at the
    # unit's next statement or at its end, still before anything commits. The defaults
    # simply call the answering versions.

    async def record_step(
        self,
        operation_id: str,
        name: str,
        *,
        status: StepStatus,
        result: JSON | Unset = UNSET,
        error: str | None | Unset = UNSET,
        add_attempt: bool = False,
        now: datetime | None = None,
    ) -> None:
        """``upsert_step`` without the answer (see above)."""
        await self.upsert_step(
            operation_id,
            name,
            status=status,
            result=result,
            error=error,
            add_attempt=add_attempt,
            now=now,
        )

    async def advance_operation(
        self,
        operation: Operation,
        *,
        status: OperationStatus | None = None,
        result: JSON | Unset = UNSET,
        error: str | None | Unset = UNSET,
        verify: bool = False,
        now: datetime | None = None,
    ) -> Operation:
        """``update_operation`` of ``operation`` as read in this unit: the backend may
        answer the updated record from it instead of reading it back (see above).

        ``verify=True``: ``operation`` was not read in this unit but remembered (see
        ``Store.recent_operation``); the update applies only if the stored row is still
        that version, else ``StaleOperation`` is raised and the caller rolls the unit back
        and redoes it from a fresh read. A backend may check this with the write itself.
        """
        if verify:
            current = await self.get_operation(operation.id)
            if current is None:
                raise RecordNotFound(f"no operation {operation.id!r} to update")
            fields = ("updated_at", "status", "result", "error")
            if any(getattr(current, f) != getattr(operation, f) for f in fields):
                raise StaleOperation(
                    f"operation {operation.id} changed since the remembered version"
                )
        return await self.update_operation(
            operation.id, status=status, result=result, error=error, now=now
        )

    @abstractmethod
    async def add_steps(
        self,
        operation_id: str,
        names: Sequence[str],
        *,
        status: StepStatus = StepStatus.PENDING,
        now: datetime | None = None,
    ) -> list[SagaStep]:
        """Write a saga's steps at once, in this order, after any existing ones (one round
        trip, where ``upsert_step`` per step costs one each). An existing name is an
        integrity error."""

    # ------------------------------------------------------------ outbox

    @abstractmethod
    async def enqueue(self, message: NewMessage, *, now: datetime | None = None) -> int:
        """Add a pending message; returns its id (ids grow in commit order per backend)."""

    async def add_message(self, message: NewMessage, *, now: datetime | None = None) -> None:
        """``enqueue`` without the id (see ``record_step``)."""
        await self.enqueue(message, now=now)

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
        (see the ordering contract in the module docstring); returns them leased."""

    @abstractmethod
    async def complete(
        self, message_id: int, owner: str, *, now: datetime | None = None
    ) -> OutboxMessage:
        """Mark a leased message done. Write the saga step and the next messages in the
        same transaction. Raises ``LeaseLost`` if ``owner`` does not hold it."""

    async def settle_done(
        self, message_id: int, owner: str, *, now: datetime | None = None
    ) -> None:
        """``complete`` without the answer (see ``record_step``): ``LeaseLost`` may be
        raised by the unit's next statement or its end instead of here."""
        await self.complete(message_id, owner, now=now)

    @abstractmethod
    async def retry_later(
        self,
        message_id: int,
        owner: str,
        *,
        error: str,
        available_at: datetime,
        now: datetime | None = None,
    ) -> OutboxMessage:
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
    ) -> OutboxMessage:
        """Not tried (e.g. the breaker is open): back to pending until ``available_at``
        without counting an attempt."""

    @abstractmethod
    async def dead_letter(
        self, message_id: int, owner: str, *, reason: str, now: datetime | None = None
    ) -> OutboxMessage:
        """Give up: the message becomes a dead letter (attempts + 1) and blocks its aggregate."""

    @abstractmethod
    async def replay(self, message_id: int, *, now: datetime | None = None) -> bool:
        """Dead letter back to pending, attempts reset, due now. False if it is not dead."""

    @abstractmethod
    async def replay_all(self, *, now: datetime | None = None) -> int:
        """Replay every dead letter; returns how many."""

    @abstractmethod
    async def discard(self, message_id: int, *, now: datetime | None = None) -> bool:
        """Dead letter given up for good (unblocks its aggregate). False if it is not dead."""

    @abstractmethod
    async def purge_outbox(self, *, before: datetime, limit: int | None = None) -> int:
        """Delete messages settled (done or discarded) before ``before``; returns how many.
        Pending, leased and dead messages are never purged."""

    # ------------------------------------------------------------ idempotency

    @abstractmethod
    async def begin_idempotent(
        self,
        client_id: str,
        key: str,
        fingerprint: str,
        *,
        operation_id: str | None = None,
        now: datetime | None = None,
        ttl: timedelta = DEFAULT_IDEMPOTENCY_TTL,
    ) -> IdempotencyResult:
        """Claim (client, key) for a request with this payload ``fingerprint``.

        NEW: no live record existed; one is now in flight (write the operation in the same
        transaction so both commit or neither). REPLAY: completed with the same
        fingerprint; answer ``record.response``. CONFLICT: in flight with the same
        fingerprint. MISMATCH: a live record with another fingerprint (in flight or not).
        An expired record is replaced as if absent. Of concurrent begins for one key,
        across tasks and processes, exactly one gets NEW.
        """

    @abstractmethod
    async def complete_idempotent(
        self,
        client_id: str,
        key: str,
        response: JSON,
        *,
        operation_id: str | None = None,
        now: datetime | None = None,
    ) -> IdempotencyRecord:
        """Store the response and mark the record completed (expiry unchanged); also
        sets ``operation_id`` if given. Raises ``IdempotencyStateError`` if there is no
        live record."""

    @abstractmethod
    async def release_idempotent(self, client_id: str, key: str) -> bool:
        """Drop an in-flight record (the request failed before doing anything), so the
        client may retry with the same key. False if there was none in flight."""

    @abstractmethod
    async def purge_expired(self, *, now: datetime | None = None, limit: int | None = None) -> int:
        """Delete expired idempotency records; returns how many."""

    # ------------------------------------------------------------ inbox, audit

    @abstractmethod
    async def record_inbox(
        self,
        system: str,
        event_id: str,
        payload: JSON,
        *,
        now: datetime | None = None,
    ) -> bool:
        """Record a received event; False if (system, event_id) was already recorded."""

    @abstractmethod
    async def mark_inbox_processed(
        self, system: str, event_id: str, *, now: datetime | None = None
    ) -> bool:
        """Mark a recorded event handled; False if unknown."""

    @abstractmethod
    async def purge_inbox(self, *, before: datetime, limit: int | None = None) -> int:
        """Delete events processed before ``before``; returns how many. Keep events longer
        than the vendors' redelivery window, or a late redelivery is handled twice."""

    @abstractmethod
    async def append_audit(
        self,
        *,
        actor: str,
        action: str,
        subject: str,
        correlation_id: str | None = None,
        detail: JSON = None,
        now: datetime | None = None,
    ) -> AuditEntry:
        """Append one audit entry."""

    async def add_audit(
        self,
        *,
        actor: str,
        action: str,
        subject: str,
        correlation_id: str | None = None,
        detail: JSON = None,
        now: datetime | None = None,
    ) -> None:
        """``append_audit`` without the entry (see ``record_step``)."""
        await self.append_audit(
            actor=actor,
            action=action,
            subject=subject,
            correlation_id=correlation_id,
            detail=detail,
            now=now,
        )

    async def add_audits(self, entries: Sequence[NewAudit]) -> None:
        """Append many entries at once (the audit writer's batches); a backend may hold
        them back like ``add_audit``."""
        for entry in entries:
            await self.append_audit(
                actor=entry.actor,
                action=entry.action,
                subject=entry.subject,
                correlation_id=entry.correlation_id,
                detail=entry.detail,
                now=entry.at,
            )

    @abstractmethod
    async def purge_audit(self, *, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` of the oldest entries written before ``before`` (with
        their keys); returns how many. Call it again while it returns ``limit``: small
        units keep the writer free for everyone else between them."""

    # ------------------------------------------------------------ cross-references

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

    # ------------------------------------------------------------ the read model

    @abstractmethod
    async def put_read_rows(self, rows: Sequence[ReadRow]) -> None:
        """Upsert read-model records; a row whose ``version`` is older than the stored
        one's is ignored (an older state never overwrites a newer one)."""

    @abstractmethod
    async def cover_read(self, system: str, kind: str, customer: str, loaded_at: datetime) -> None:
        """Record that ``customer``'s whole slice of ``kind`` was read at ``loaded_at``."""

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

    @abstractmethod
    async def record_reconciliation(
        self,
        *,
        started_at: datetime,
        finished_at: datetime,
        trigger: str,
        customers: int,
        findings: Sequence[DriftFinding],
        incomplete: Mapping[str, str],
    ) -> int:
        """Store a run and its findings; returns the run's id."""

    @abstractmethod
    async def mark_applied(
        self, events: Sequence[tuple[str, str]], *, now: datetime | None = None
    ) -> None:
        """Mark inbox events (system, event id) applied to the read model."""


class Store(ABC):
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
    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """A unit of work: commits on normal exit, rolls back on an exception."""

    @abstractmethod
    def reader(self) -> AbstractAsyncContextManager[Reader]:
        """A consistent read view (does not block writers where the backend allows)."""

    @abstractmethod
    async def schema_version(self) -> int:
        """The migration version the database is at."""

    def recent_operation(self, operation_id: str) -> Operation | None:
        """The version of an operation this process last committed, if still remembered.

        A hint, not a read: another process may have changed the row since. Use it only
        with ``Transaction.advance_operation(..., verify=True)``, which checks that the row
        is still this version. It saves the dispatcher a read round trip inside its unit of
        work for each step. Backends without a memory answer ``None``.
        """
        return self._recent.get(operation_id)

    def _remember(self, operation: Operation) -> None:
        """Backends call this after a commit, for each operation it changed."""
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
        """Backends call this after a commit that touched the outbox."""
        if self._outbox_event is not None:
            self._outbox_event.set()
            self._outbox_event = None

    # ------------------------------------------------------------ read shortcuts

    def _shortcut_reader(self) -> AbstractAsyncContextManager[Reader]:
        """The reader the one-call shortcuts below use; a backend may return a cheaper one
        (no snapshot) since each shortcut is a single read."""
        return self.reader()

    async def get_operation(self, operation_id: str) -> Operation | None:
        async with self._shortcut_reader() as r:
            return await r.get_operation(operation_id)

    async def find_holding(
        self,
        *,
        aggregate_key: str,
        kind: str,
        field: str,
        value: str,
        settled: Collection[OperationStatus],
    ) -> Operation | None:
        async with self._shortcut_reader() as r:
            return await r.find_holding(
                aggregate_key=aggregate_key, kind=kind, field=field, value=value, settled=settled
            )

    async def list_operations(
        self,
        *,
        status: OperationStatus | None = None,
        aggregate_key: str | None = None,
        correlation_id: str | None = None,
        limit: int = 50,
        after: str | None = None,
    ) -> Page[Operation]:
        async with self._shortcut_reader() as r:
            return await r.list_operations(
                status=status,
                aggregate_key=aggregate_key,
                correlation_id=correlation_id,
                limit=limit,
                after=after,
            )

    async def get_steps(self, operation_id: str) -> list[SagaStep]:
        async with self._shortcut_reader() as r:
            return await r.get_steps(operation_id)

    async def get_message(self, message_id: int) -> OutboxMessage | None:
        async with self._shortcut_reader() as r:
            return await r.get_message(message_id)

    async def messages_for(self, operation_id: str) -> list[OutboxMessage]:
        async with self._shortcut_reader() as r:
            return await r.messages_for(operation_id)

    async def list_dead(self, *, limit: int = 100, after: int | None = None) -> list[OutboxMessage]:
        async with self._shortcut_reader() as r:
            return await r.list_dead(limit=limit, after=after)

    async def outbox_status(self) -> OutboxStatus:
        async with self._shortcut_reader() as r:
            return await r.outbox_status()

    async def get_idempotency(
        self, client_id: str, key: str, *, now: datetime | None = None
    ) -> IdempotencyRecord | None:
        async with self._shortcut_reader() as r:
            return await r.get_idempotency(client_id, key, now=now)

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

    async def unapplied_events(self, *, limit: int = 100) -> list[InboxEvent]:
        async with self._shortcut_reader() as r:
            return await r.unapplied_events(limit=limit)

    async def reconciliation_runs(self, *, limit: int = 20) -> list[ReconciliationRun]:
        async with self._shortcut_reader() as r:
            return await r.reconciliation_runs(limit=limit)

    async def reconciliation_findings(
        self, run_id: int, *, limit: int = 100, after: int | None = None
    ) -> Page[DriftFinding]:
        async with self._shortcut_reader() as r:
            return await r.reconciliation_findings(run_id, limit=limit, after=after)

    async def get_inbox(self, system: str, event_id: str) -> InboxEvent | None:
        async with self._shortcut_reader() as r:
            return await r.get_inbox(system, event_id)

    async def audit_for(self, correlation_id: str) -> list[AuditEntry]:
        async with self._shortcut_reader() as r:
            return await r.audit_for(correlation_id)

    async def audit_for_subject(self, subject: str, *, limit: int = 100) -> list[AuditEntry]:
        async with self._shortcut_reader() as r:
            return await r.audit_for_subject(subject, limit=limit)

    async def audit_trace(
        self, correlation_ids: Sequence[str], *, actor: str | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        async with self._shortcut_reader() as r:
            return await r.audit_trace(correlation_ids, actor=actor, limit=limit)

    async def audit_correlations(
        self, keys: Sequence[str], *, actor: str | None = None, limit: int = 20
    ) -> list[str]:
        async with self._shortcut_reader() as r:
            return await r.audit_correlations(keys, actor=actor, limit=limit)

    async def audit_by_keys(
        self, keys: Sequence[str], *, before: int | None = None, limit: int = 20
    ) -> list[AuditEntry]:
        async with self.reader() as r:  # several statements: one consistent view
            return await r.audit_by_keys(keys, before=before, limit=limit)

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

    # ------------------------------------------------------------ write shortcuts (own tx)

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
        in one round trip and one commit; the SQLite backend does (``sqlite_held``).
        ``work`` may then be called more than once, so it must change nothing but ``tx``.
        """
        async with self.transaction() as tx:
            value = await work(tx)
            leased: list[OutboxMessage] = []
            if owner is not None and lease_limit > 0:
                leased = await tx.lease(owner, limit=lease_limit, lease_seconds=lease_seconds)
        return value, leased

    async def lease(
        self, owner: str, *, limit: int, lease_seconds: float, now: datetime | None = None
    ) -> list[OutboxMessage]:
        async with self.transaction() as tx:
            return await tx.lease(owner, limit=limit, lease_seconds=lease_seconds, now=now)

    async def complete(
        self, message_id: int, owner: str, *, now: datetime | None = None
    ) -> OutboxMessage:
        async with self.transaction() as tx:
            return await tx.complete(message_id, owner, now=now)

    async def retry_later(
        self,
        message_id: int,
        owner: str,
        *,
        error: str,
        available_at: datetime,
        now: datetime | None = None,
    ) -> OutboxMessage:
        async with self.transaction() as tx:
            return await tx.retry_later(
                message_id, owner, error=error, available_at=available_at, now=now
            )

    async def defer(
        self,
        message_id: int,
        owner: str,
        *,
        available_at: datetime,
        reason: str | None = None,
        now: datetime | None = None,
    ) -> OutboxMessage:
        async with self.transaction() as tx:
            return await tx.defer(
                message_id, owner, available_at=available_at, reason=reason, now=now
            )

    async def dead_letter(
        self, message_id: int, owner: str, *, reason: str, now: datetime | None = None
    ) -> OutboxMessage:
        async with self.transaction() as tx:
            return await tx.dead_letter(message_id, owner, reason=reason, now=now)

    async def replay(self, message_id: int, *, now: datetime | None = None) -> bool:
        async with self.transaction() as tx:
            return await tx.replay(message_id, now=now)

    async def replay_all(self, *, now: datetime | None = None) -> int:
        async with self.transaction() as tx:
            return await tx.replay_all(now=now)

    async def discard(self, message_id: int, *, now: datetime | None = None) -> bool:
        async with self.transaction() as tx:
            return await tx.discard(message_id, now=now)

    async def enqueue(self, message: NewMessage, *, now: datetime | None = None) -> int:
        async with self.transaction() as tx:
            return await tx.enqueue(message, now=now)

    async def enqueue_many(
        self, messages: Sequence[NewMessage], *, now: datetime | None = None
    ) -> list[int]:
        async with self.transaction() as tx:
            return [await tx.enqueue(m, now=now) for m in messages]

    async def purge_expired(self, *, now: datetime | None = None, limit: int | None = None) -> int:
        async with self.transaction() as tx:
            return await tx.purge_expired(now=now, limit=limit)

    async def purge_outbox(self, *, before: datetime, limit: int | None = None) -> int:
        async with self.transaction() as tx:
            return await tx.purge_outbox(before=before, limit=limit)

    async def purge_inbox(self, *, before: datetime, limit: int | None = None) -> int:
        async with self.transaction() as tx:
            return await tx.purge_inbox(before=before, limit=limit)

    async def add_audits(self, entries: Sequence[NewAudit]) -> None:
        async with self.transaction() as tx:
            await tx.add_audits(entries)

    async def purge_audit(self, *, before: datetime, limit: int) -> int:
        async with self.transaction() as tx:
            return await tx.purge_audit(before=before, limit=limit)

    async def record_inbox(
        self, system: str, event_id: str, payload: JSON, *, now: datetime | None = None
    ) -> bool:
        async with self.transaction() as tx:
            return await tx.record_inbox(system, event_id, payload, now=now)

    async def append_audit(
        self,
        *,
        actor: str,
        action: str,
        subject: str,
        correlation_id: str | None = None,
        detail: JSON = None,
        now: datetime | None = None,
    ) -> AuditEntry:
        async with self.transaction() as tx:
            return await tx.append_audit(
                actor=actor,
                action=action,
                subject=subject,
                correlation_id=correlation_id,
                detail=detail,
                now=now,
            )

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
