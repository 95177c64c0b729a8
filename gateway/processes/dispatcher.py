"""The outbox dispatcher: delivers outbox messages to the system actors, at least once.

    dispatcher = Dispatcher(store, systems, policy=outbox_policy.dispatcher)
    await task_group.start(dispatcher.run)      # ready once its workers are up
    dispatcher.stop()                           # drain and return (or cancel the group)

``gateway.runtime.open_runtime`` builds one this way with ``policies.outbox.dispatcher``.

How it works:

- A leaser leases due messages (``store.lease``) for as many workers as are free. The
  store hands out at most one message per customer (aggregate) at a time and never one
  whose earlier message is pending, leased or dead: so one customer's steps run in order
  and different customers' run in parallel on ``workers`` workers.
- A worker builds the step's message from its payload (``gateway.processes.saga``),
  marked ``first_delivery`` when the message was never leased before (no earlier attempt
  can have reached the system, so a connector may skip a check-before-create read), asks
  the system's actor at ``TRANSACTIONAL`` priority with ``delivery_timeout``, and records
  the outcome in one transaction with the saga's next step:
  success -> step done, next step enqueued (or the operation SUCCEEDED);
  ``BreakerOpen`` / ``Throttled`` / ``ActorStopped``, or a failure that left the system's
  breaker open (it tripped it, or was a failed half-open trial) -> deferred
  (``defer_seconds`` or the vendor's ``Retry-After``), no attempt spent: the system is
  down, which is no fault of the message, so an outage of any length dead-letters nothing;
  another retryable error -> retried after full-jitter backoff, one attempt spent;
  a non-retryable error or ``max_attempts`` spent -> dead letter, the flow's compensation
  policy, the operation NEEDS_ATTENTION (optional enrichment steps are skipped instead).
- After a success the worker leases its next message in the same transaction (often the
  saga's next step, now eligible), so a delivery costs one transaction, not two.
- It wakes when this process enqueues (``outbox_signal``), when a worker frees up
  (unless that worker's own last lease found nothing due), and at least every
  ``poll_interval`` (messages from other processes, retries coming due). A lease that
  returns fewer messages than asked for is not repeated until one of those wake-ups.
- Leases: ``lease_seconds`` exceeds ``delivery_timeout``, so a live dispatcher always
  settles its messages before the lease runs out; the lease only matters when the
  process died, and then the message is leased again after it expires (recovery). The
  downstream idempotency key makes the second delivery harmless.
- Every ``PURGE_SECONDS`` it deletes expired idempotency records (expired ones already
  read as absent; this only keeps the table small).
- Shutdown (``stop()`` or cancellation): no new leases; each in-flight delivery is
  shielded and finishes within ``drain_seconds``; leased messages not started yet are
  handed back at once. Whatever is cut short keeps its lease and is recovered later.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import random
import secrets
import socket
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from actors import tracing
from actors.context import CallContext, reset_call, set_call, trace_id_for
from actors.errors import ActorStopped, BreakerOpen, CrosswalkSystemError, Throttled
from actors.messages import Message, Priority, Write
from canonical import System
from gateway.governance.outbox import DispatchPolicy
from gateway.processes.context import SystemsLike
from gateway.processes.flows import FLOWS
from gateway.processes.saga import Flow, dead_letter_step, skip_step, succeed_step
from gateway.processes.signal import outbox_signal
from gateway.store import (
    LeaseLost,
    Operation,
    OutboxMessage,
    StaleOperation,
    Store,
    StoreError,
    Transaction,
)

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)

#: errors that say "the system is not taking calls right now", not "this call failed"
_WAIT_ERRORS = (BreakerOpen, Throttled, ActorStopped)

#: how often expired idempotency records are deleted (they already read as absent)
PURGE_SECONDS = 600.0


def _holder(message: OutboxMessage) -> str:
    """The fencing token a leased message's settle must name (its lease's owner)."""
    assert message.lease_owner is not None, f"outbox message {message.id} is not leased"
    return message.lease_owner


def _breaker_open(actor: Any) -> bool:
    """Whether the actor's circuit breaker is open now (actors without one: never)."""
    return getattr(actor, "breaker_state", "closed") in ("open", "half-open", "half_open")


class Dispatcher:
    """Delivers the outbox (see the module docstring). One per process and store."""

    def __init__(
        self,
        store: Store,
        systems: SystemsLike,
        *,
        policy: DispatchPolicy | None = None,
        flows: Mapping[str, Flow] | None = None,
        owner: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.systems = systems
        self.policy = policy or DispatchPolicy()
        self.flows = dict(FLOWS if flows is None else flows)
        #: the lease owner name: unique per dispatcher, readable in the outbox table;
        #: each lease is taken as ``owner/<n>``, a fencing token unique per lease
        self.owner = owner or f"{socket.gethostname()}:{secrets.token_hex(4)}"
        self._leases = itertools.count(1)
        self._rng = rng or random.Random()
        self._signal = outbox_signal(store)
        self._stopping = False
        self._free = self.policy.workers
        #: counters for metrics and tests
        self.delivered = 0
        self.deferred = 0
        self.retried = 0
        self.dead = 0
        self.fenced = 0  # writes not sent because their lease had lapsed

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Deliver until ``stop()`` or cancellation; ready once the workers are up."""
        self._stopping = False
        send: MemoryObjectSendStream[OutboxMessage]
        receive: MemoryObjectReceiveStream[OutboxMessage]
        send, receive = anyio.create_memory_object_stream[OutboxMessage](self.policy.workers)
        async with anyio.create_task_group() as tg, receive:
            for n in range(self.policy.workers):
                tg.start_soon(self._worker, receive.clone(), name=f"outbox-worker-{n}")
            task_status.started()
            try:
                async with send:
                    await self._lease_loop(send)
            finally:
                # hand back what was leased but not started, so nobody waits for the lease
                with anyio.CancelScope(shield=True), anyio.move_on_after(2.0):
                    await self._release_unstarted(receive)

    def stop(self) -> None:
        """Stop leasing; in-flight deliveries finish (bounded) and ``run`` returns."""
        self._stopping = True
        self._signal.notify()

    # ------------------------------------------------------------------ leasing

    async def _lease_loop(self, send: MemoryObjectSendStream[OutboxMessage]) -> None:
        purge_at = anyio.current_time()
        while not self._stopping:
            if anyio.current_time() >= purge_at:
                purge_at = anyio.current_time() + PURGE_SECONDS
                try:
                    purged = await self.store.purge_expired()
                except StoreError as exc:
                    log.warning("purging expired idempotency records failed: %s", exc)
                else:
                    if purged:
                        log.info("purged %d expired idempotency records", purged)
            leased: list[OutboxMessage] = []
            if self._free > 0:
                try:
                    leased = await self.store.lease(
                        self._token(), limit=self._free, lease_seconds=self.policy.lease_seconds
                    )
                except StoreError as exc:
                    log.warning("outbox lease failed, trying again shortly: %s", exc)
            asked = self._free
            for message in leased:
                self._free -= 1
                await send.send(message)
            # Fewer than asked for: nothing else is due now, so wait for a wake-up (a
            # notify while leasing is kept) instead of a lease that would come back empty.
            if len(leased) < asked or self._free == 0:
                await self._signal.wait(self.policy.poll_interval)

    async def _release_unstarted(self, receive: MemoryObjectReceiveStream[OutboxMessage]) -> None:
        now = self.store.clock()
        while True:
            try:
                message = receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                return
            with contextlib.suppress(StoreError):  # else its lease expires: recovered then
                await self.store.defer(message.id, _holder(message), available_at=now)

    # ------------------------------------------------------------------ delivering

    async def _worker(self, receive: MemoryObjectReceiveStream[OutboxMessage]) -> None:
        with receive:
            async for message in receive:
                current: OutboxMessage | None = message
                # whether the last delivery's own lease found nothing due: then the leaser
                # need not be woken for this worker (enqueues and the poll wake it anyway)
                idle = False
                try:
                    while current is not None:
                        follow: OutboxMessage | None = None
                        idle = False
                        # Shielded: a shutdown lets the delivery finish and record its
                        # outcome (bounded by drain_seconds) instead of leaving it half-known.
                        with (
                            anyio.CancelScope(shield=True),
                            anyio.move_on_after(
                                self.policy.delivery_timeout + self.policy.drain_seconds
                            ),
                        ):
                            try:
                                follow, idle = await self._deliver(current)
                            except Exception:  # a boundary: one message must not stop a worker
                                log.exception(
                                    "outbox message %s: delivery failed unexpectedly; its lease "
                                    "expires and it is delivered again",
                                    current.id,
                                )
                        current = follow
                        if current is not None and self._stopping:
                            await self._release(current)
                            current = None
                finally:
                    self._free += 1
                    if not idle or self._stopping:
                        self._signal.notify()
                if self._stopping:
                    return

    def _token(self) -> str:
        """A new lease's fencing token: this dispatcher's name and a lease number.

        Every settle names the token its message was leased under, so a worker whose
        lease expired and was taken again (by another dispatcher, or by this one's own
        leaser) is refused (LeaseLost), even when it runs in the same process."""
        return f"{self.owner}/{next(self._leases)}"

    def _still_holds(self, message: OutboxMessage) -> bool:
        """Whether this delivery's lease has time left for the whole call.

        Checked right before a write goes out: a worker that paused past its lease (a
        long GC, a stopped VM) must not send a create that the message's new holder is
        sending too. A lease is only ever taken over once it has expired, so with at
        least ``delivery_timeout`` left (the call is cut off then) nobody else can hold
        it before the call ends: the lease's own expiry answers, with no store read."""
        expires = message.lease_expires_at
        if expires is None:
            return False
        left = (expires - self.store.clock()).total_seconds()
        return left >= self.policy.delivery_timeout

    async def _release(self, message: OutboxMessage) -> None:
        with anyio.CancelScope(shield=True), contextlib.suppress(StoreError):
            await self.store.defer(message.id, _holder(message), available_at=self.store.clock())

    async def _deliver(self, message: OutboxMessage) -> tuple[OutboxMessage | None, bool]:
        """Deliver one message and record the outcome; answers the next message this
        worker leased in the same transaction (after a success), if any, and whether that
        lease found nothing due."""
        if tracing.enabled():
            attributes: dict[str, str | int | float | bool] = {
                "crosswalk.operation": message.operation_id or "",
                "crosswalk.step": message.step,
                "crosswalk.system": message.system,
                "crosswalk.attempt": message.attempts + 1,
            }
            with tracing.span(f"outbox {message.type}", attributes):
                return await self._deliver_one(message)
        return await self._deliver_one(message)

    async def _deliver_one(self, message: OutboxMessage) -> tuple[OutboxMessage | None, bool]:
        flow = self.flows.get(message.type.partition("/")[0])
        try:
            if flow is None:
                raise LookupError(f"no flow handles message type {message.type!r}")
            step = flow.step(message.step)
            request: Message = step.build(message.payload, message.idempotency_key)
            if message.deliveries == 1 and isinstance(request, Write):
                request = dataclasses.replace(request, first_delivery=True)
            actor = self.systems[System(message.system)]
        except (LookupError, ValueError, TypeError) as exc:
            await self._settle_dead(flow, message, f"cannot build the message: {exc}")
            return None, False
        if isinstance(request, Write) and not self._still_holds(message):
            log.warning(
                "outbox message %s: lease %s lapsed before its write went out; not sent "
                "(its current holder delivers it)",
                message.id,
                message.lease_owner,
            )
            self.fenced += 1
            await self._release(message)  # refused (LeaseLost) unless still ours
            return None, False
        call = set_call(await self._call_context(message))
        try:
            try:
                result = await actor.ask(
                    request, priority=Priority.TRANSACTIONAL, timeout=self.policy.delivery_timeout
                )
            except _WAIT_ERRORS as exc:
                await self._defer(message, exc)
            except CrosswalkSystemError as exc:
                if exc.retryable and _breaker_open(actor):
                    # this call tripped the breaker, or was a failed half-open trial: the system
                    # is down, which is no fault of this message; wait like any other caller
                    await self._defer(message, exc)
                else:
                    await self._failed(flow, message, exc, retryable=bool(exc.retryable))
            except Exception as exc:  # a boundary: a connector bug must not kill the worker
                log.exception("delivering outbox message %s raised", message.id)
                await self._failed(flow, message, exc, retryable=False)
            else:
                follow: list[OutboxMessage] | None = await self._settle(
                    self._succeed, flow, message, result
                )
                if follow is None:  # not recorded, or no lease asked (stopping)
                    return None, False
                return (follow[0], False) if follow else (None, True)
        finally:
            reset_call(call)
        return None, False

    async def _call_context(self, message: OutboxMessage) -> CallContext | None:
        """The correlation (and trace) of the operation this delivery works for: the
        vendor calls it makes carry the id of the request that started it."""
        if message.operation_id is None:
            return None
        operation = self.store.recent_operation(message.operation_id)
        if operation is None:
            with contextlib.suppress(StoreError):
                operation = await self.store.get_operation(message.operation_id)
        if operation is None or not operation.correlation_id:
            return None
        cid = operation.correlation_id
        # the client whose mutation this delivery carries out is who the calls are for
        return CallContext(cid, trace_id_for(cid), actor=operation.client_id)

    async def _succeed(
        self, flow: Flow, message: OutboxMessage, result: Any
    ) -> list[OutboxMessage] | None:
        """Record the success and, in the same transaction, lease this worker's next
        message (often the saga's next step): one transaction per delivery, not two.

        The operation as this process last committed it saves the unit its read, so the
        unit needs no answer before its end and the store may batch it with other
        workers' (``Store.run_unit``: one round trip and one commit for many); if another
        process changed it since (the write's check fails, or the saga trips over what
        the remembered version lacks), the unit is redone from a fresh read."""
        assert message.operation_id is not None
        known = self.store.recent_operation(message.operation_id)
        stopping = self._stopping

        async def work(tx: Transaction) -> Operation:
            return await succeed_step(tx, flow, message, _holder(message), result, known=known)

        async def record() -> list[OutboxMessage]:
            _, leased = await self.store.run_unit(
                work,
                owner=self._token(),
                lease_limit=0 if stopping else 1,
                lease_seconds=self.policy.lease_seconds,
            )
            return leased

        try:
            leased = await record()
        except (StaleOperation, LookupError, TypeError, ValueError):
            # a saga error computed from a remembered version may be the staleness itself
            # (a result it lacks): only an error from a fresh read is the saga's own
            if known is None:
                raise
            known = None
            leased = await record()
        self.delivered += 1
        return None if stopping else leased

    async def _defer(self, message: OutboxMessage, exc: CrosswalkSystemError) -> None:
        wait = max(exc.retry_after or 0.0, self.policy.defer_seconds)
        wait *= self._rng.uniform(0.75, 1.25)  # spread the herd waiting on one breaker
        available = self.store.clock() + timedelta(seconds=wait)
        try:
            await self.store.defer(
                message.id, _holder(message), available_at=available, reason=f"waiting: {exc}"
            )
        except LeaseLost:
            log.info("outbox message %s: lease lost while deferring", message.id)
        self.deferred += 1

    async def _failed(
        self, flow: Flow, message: OutboxMessage, exc: BaseException, *, retryable: bool
    ) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        if retryable and message.attempts + 1 < self.policy.max_attempts:
            delay = self._rng.uniform(
                0.0,
                min(self.policy.backoff_cap, self.policy.backoff_base * 2**message.attempts),
            )
            try:
                await self.store.retry_later(
                    message.id,
                    _holder(message),
                    error=reason,
                    available_at=self.store.clock() + timedelta(seconds=delay),
                )
            except LeaseLost:
                log.info("outbox message %s: lease lost while scheduling a retry", message.id)
            self.retried += 1
            return
        if not retryable:
            reason = f"{reason} (not retryable)"
        else:
            reason = f"{reason} (gave up after {message.attempts + 1} attempts)"
        await self._settle_dead(flow, message, reason)

    async def _settle_dead(self, flow: Flow | None, message: OutboxMessage, reason: str) -> None:
        if flow is not None and flow.step_or_none(message.step) is not None:
            step = flow.step(message.step)
            if step.optional:
                await self._settle(self._skip, flow, message, reason)
                return
        await self._settle(self._dead, flow, message, reason)

    async def _skip(self, flow: Flow, message: OutboxMessage, reason: str) -> None:
        async with self.store.transaction() as tx:
            await skip_step(tx, flow, message, _holder(message), reason)

    async def _dead(self, flow: Flow | None, message: OutboxMessage, reason: str) -> None:
        async with self.store.transaction() as tx:
            if flow is None:
                await tx.dead_letter(message.id, _holder(message), reason=reason)
            else:
                await dead_letter_step(tx, flow, message, _holder(message), reason)
        self.dead += 1
        log.warning("outbox message %s (%s) is a dead letter: %s", message.id, message.type, reason)

    async def _settle(self, action: Any, flow: Any, message: OutboxMessage, value: Any) -> Any:
        """Record an outcome in one transaction.

        A lost lease means another dispatcher owns the message now; a store error leaves
        the message leased, so it is delivered again after the lease (the idempotency key
        makes that harmless). If the saga itself cannot record a success (its next step's
        payload cannot be built), the message becomes a dead letter naming the cause.
        """
        try:
            return await action(flow, message, value)
        except LeaseLost:
            log.info("outbox message %s: lease lost before its outcome was recorded", message.id)
        except StoreError as exc:
            log.warning(
                "outbox message %s: outcome not recorded (%s); redelivered later", message.id, exc
            )
        except (LookupError, TypeError, ValueError) as exc:
            if action == self._dead:
                raise
            log.exception("outbox message %s: the saga could not record the outcome", message.id)
            await self._settle(
                self._dead, flow, message, f"the saga could not record the outcome: {exc!r}"
            )
        return None
