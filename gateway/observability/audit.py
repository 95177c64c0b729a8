"""The vendor calls' audit trail: every connector HTTP call becomes a ``vendor.call`` entry.

    async with AuditWriter(store, capacity=10_000) as audit:
        async with Systems(policy, on_call=audit.record) as systems:
            ...
    # leaving: the writer stops after a final flush

One store transaction per call would cost more than the call's own bookkeeping, so
``record`` (the actors' ``on_call`` hook: it runs inline, once per call) only appends the
call to a bounded in-memory queue, and one writer task drains the queue every
``interval`` seconds into one transaction per batch (``Transaction.append_audit``). When the
store falls behind and the queue is full, the oldest call is dropped and counted
(``dropped``, exported as ``crosswalk_audit_dropped_total``): the trail may lose entries
under overload, the calls never wait for it.

An entry: actor = the client id or Crosswalk process the call was made for (``crosswalk``
when unknown), action ``vendor.call``, subject ``<system>:<METHOD> <path>`` (no query
string), detail ``{system, method, path, status, latency_ms, attempt, outcome}``, under the
correlation id of the work that made it.
"""

from __future__ import annotations

import logging
from collections import deque
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from actors.calls import VendorCall
from gateway.store import NewAudit, Store, StoreError

__all__ = ["DEFAULT_ACTOR", "VENDOR_CALL", "AuditWriter", "purge_audit", "vendor_call_entry"]

log = logging.getLogger(__name__)

#: the actor of a call made for no known client or process
DEFAULT_ACTOR = "crosswalk"
#: the action of a vendor call's entry
VENDOR_CALL = "vendor.call"
#: seconds the final flush at shutdown may take
FINAL_FLUSH_SECONDS = 5.0


def vendor_call_entry(call: VendorCall) -> NewAudit:
    """The audit entry of one vendor call."""
    return NewAudit(
        actor=call.actor or DEFAULT_ACTOR,
        action=VENDOR_CALL,
        subject=f"{call.system}:{call.method} {call.path}",
        correlation_id=call.correlation_id,
        detail={
            "system": call.system,
            "method": call.method,
            "path": call.path,
            "status": call.status,
            "latency_ms": call.latency_ms,
            "attempt": call.attempt,
            "outcome": call.outcome,
        },
        at=datetime.fromtimestamp(call.at, UTC),
    )


class AuditWriter:
    """Batches vendor calls into the audit trail (see the module docstring).

    Lifecycle: ``async with`` starts the writer task and, on leaving, stops it and writes
    what is still queued; a closed writer cannot be reopened. ``record`` may be called at
    any time; calls recorded after the final flush are counted as dropped.
    """

    def __init__(
        self,
        store: Store,
        *,
        capacity: int = 10_000,
        interval: float = 0.2,
        max_batch: int = 2_000,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.store = store
        self.interval = interval
        self.max_batch = max_batch
        self._queue: deque[VendorCall] = deque(maxlen=capacity)
        self._closed = False
        self._owner: TaskGroup | None = None
        #: calls dropped because the queue was full (the oldest go first)
        self.dropped = 0
        #: entries written, and entries lost because their batch's transaction failed
        self.written = 0
        self.failed = 0

    @property
    def capacity(self) -> int:
        assert self._queue.maxlen is not None
        return self._queue.maxlen

    @property
    def queued(self) -> int:
        return len(self._queue)

    def record(self, call: VendorCall) -> None:
        """Queue one call (the actors' ``on_call`` hook); never blocks, never raises."""
        queue = self._queue
        if self._closed:
            self.dropped += 1
            return
        if len(queue) == queue.maxlen:
            self.dropped += 1  # the deque drops the oldest itself
        queue.append(call)

    async def flush(self) -> int:
        """Write everything queued now, one transaction per batch; answers how many."""
        written = 0
        queue = self._queue
        while queue:
            batch = [queue.popleft() for _ in range(min(len(queue), self.max_batch))]
            entries = [vendor_call_entry(c) for c in batch]
            try:
                await self.store.append_audit(*entries)
            except StoreError as exc:
                self.failed += len(entries)
                log.warning("%d vendor-call audit entries not written: %s", len(entries), exc)
                return written
            written += len(entries)
            self.written += len(entries)
        return written

    async def run(self) -> None:
        """Flush every ``interval`` seconds until cancelled."""
        while True:
            await anyio.sleep(self.interval)
            await self.flush()

    async def __aenter__(self) -> Self:
        if self._closed or self._owner is not None:
            raise RuntimeError("Cannot reopen an audit writer once it has been used.")
        self._owner = anyio.create_task_group()
        await self._owner.__aenter__()
        self._owner.start_soon(self.run, name="audit writer")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._owner is not None
        self._owner.cancel_scope.cancel()
        try:
            return await self._owner.__aexit__(exc_type, exc, tb)
        finally:
            # the final flush, even when shutdown is a cancellation
            with anyio.CancelScope(shield=True), anyio.move_on_after(FINAL_FLUSH_SECONDS):
                await self.flush()
            self._closed = True


async def purge_audit(store: Store, *, before: datetime, batch: int) -> int:
    """Delete entries written before ``before``, ``batch`` per transaction (never one
    huge DELETE that would hold the store's writer from everyone else); answers how many."""
    purged = 0
    while True:
        deleted = await store.purge_audit(before=before, limit=batch)
        purged += deleted
        if deleted < batch:
            return purged
        await anyio.lowlevel.checkpoint()  # let the writers queued meanwhile go first
