"""The generic actor: a priority mailbox served by a fixed pool of supervised workers.

Lifecycle (one way only)::

    UNSTARTED -> RUNNING -> STOPPING -> STOPPED

Start it with ``async with actor:`` or ``await tg.start(actor.run)``; stop it with
``actor.stop()`` (or by leaving the ``async with``). On stop the mailbox is closed, every
queued ask fails at once with ``ActorStopped`` naming its message, in-flight messages get
``stop_grace`` seconds to finish and are then cancelled (their asks fail the same way).

Supervision: a handler that raises a ``CrosswalkSystemError`` fails only its own ask. Any
other exception is a bug in the handler: it fails its ask too, then the worker is
restarted after an exponential backoff (the pool keeps its size; the streak resets once a
message is handled).

Fast path: when the actor is running, nothing is queued and a worker is idle, ``ask``
borrows that idle worker (``Mailbox.lend``) and runs the handler in the asker's own task,
saving the hop through the mailbox (the put, the worker's wake-up and the reply event).
Everything else is as for a worker: the borrowed worker's slot counts against the pool
(the bulkhead bound holds), the deadline is checked first (an expired ask is dropped and
counted), ``in_flight`` counts it, a system error fails only the ask, a handler bug fails
the ask and the borrowed worker is restarted with backoff as if it had crashed itself,
and ``stop()`` cancels it after ``stop_grace`` with the same ``ActorStopped``. A queued
message is never overtaken: the fast path is only taken while the mailbox is empty.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskStatus

from actors._envelope import Envelope, Reply
from actors._mailbox import LoanFailed, Mailbox, MailboxClosed
from actors._stats import ActorStats
from actors._tasks import RunsInOwnGroup
from actors.context import current_call, set_call
from actors.errors import ActorStopped, CrosswalkSystemError, SystemTimeout, Throttled
from actors.messages import Message, Priority

__all__ = ["Actor"]

log = logging.getLogger(__name__)


def _asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop, or None on another backend (trio)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _State(enum.Enum):
    UNSTARTED = "unstarted"  # made, not yet running; asks are refused
    RUNNING = "running"  # workers serve the mailbox
    STOPPING = "stopping"  # mailbox closed, in-flight messages finishing
    STOPPED = "stopped"  # every task ended; cannot be restarted


class _WorkerCrashed(Exception):
    """A handler raised something other than a system error: restart the worker."""


Handler = Callable[[Envelope], Awaitable[Any]]

# how long a stopping actor waits for cancelled fast-path calls to unwind in their askers'
# tasks (a handler that shields itself from cancellation must not hold the stop forever)
_UNWIND_SECONDS = 5.0


class Actor(RunsInOwnGroup):
    """A mailbox, a bulkhead of workers and their supervisor, for one named system."""

    def __init__(
        self,
        name: str,
        handler: Handler,
        *,
        workers: int = 8,
        capacity: int = 1000,
        default_timeout: float = 10.0,
        stop_grace: float = 0.0,
        restart_backoff: tuple[float, float] = (0.01, 2.0),
        stats: ActorStats | None = None,
        handler_keeps_deadline: bool = False,
    ) -> None:
        if workers < 1:
            raise ValueError(f"The {name} actor needs at least one worker, got {workers}.")
        self.name = name
        self.stats = stats or ActorStats(name)
        self._handler = handler
        # a handler that bounds every wait by the envelope's deadline itself spares the
        # worker a cancel scope per message (they are a large share of the per-ask cost)
        self._handler_keeps_deadline = handler_keeps_deadline
        self._workers = workers
        self._mailbox: Mailbox[Envelope] = Mailbox(capacity)
        self._default_timeout = default_timeout
        self._stop_grace = stop_grace
        self._restart_base, self._restart_cap = restart_backoff
        self._state = _State.UNSTARTED
        self._stop_requested = anyio.Event()
        self._stopped = anyio.Event()
        self._in_flight = 0
        self._idle = anyio.Event()
        # cancel scopes of the asks running in their askers' tasks (the fast path)
        self._direct: set[anyio.CancelScope | asyncio.Timeout] = set()
        self._direct_cancelled = False
        # Set by ``run`` on asyncio: asks then wait for their deadline with a loop timer
        # and make their reply event from the backend's class directly. A cancel scope
        # per ask (and anyio's backend lookup per event) was the largest part of an ask's
        # CPU cost; any other backend keeps the cancel scope.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event_class: type[anyio.Event] | None = None
        #: ``anyio.current_time`` without its backend lookup once running on asyncio
        self.clock: Callable[[], float] = anyio.current_time

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._state is _State.RUNNING

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The asyncio loop the actor runs on; None before ``run`` and on other backends."""
        return self._loop

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def mailbox(self) -> Mailbox[Envelope]:
        return self._mailbox

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve the mailbox until ``stop()``; signals readiness once the workers are up."""
        if self._state is not _State.UNSTARTED:
            raise RuntimeError(f"Cannot start the {self.name} actor again once it has run.")
        self._state = _State.RUNNING
        self._loop, self._event_class = _asyncio_loop(), type(anyio.Event())
        self._mailbox.event_class = self._event_class
        if self._loop is not None:
            self.clock = self._loop.time  # what anyio.current_time answers on asyncio
        try:
            async with anyio.create_task_group() as tg:
                for index in range(self._workers):
                    tg.start_soon(self._supervise, index, name=f"{self.name}-worker-{index}")
                task_status.started()
                await self._stop_requested.wait()
                self._state = _State.STOPPING
                self._fail_queued()
                if self._in_flight:
                    with anyio.move_on_after(self._stop_grace):
                        await self._idle.wait()
                tg.cancel_scope.cancel()
                self._cancel_direct()
            if self._in_flight:  # fast-path calls cancelled above, unwinding in their askers
                with anyio.move_on_after(_UNWIND_SECONDS):
                    await self._idle.wait()
        finally:
            # also reached when cancelled from outside: nobody may be left waiting
            self._state = _State.STOPPED
            self._cancel_direct()
            self._fail_queued()
            self._stopped.set()

    def stop(self) -> None:
        """Ask the actor to stop; ``run`` returns once every task has ended."""
        self._stop_requested.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    # ------------------------------------------------------------------ asking

    def deadline_for(self, timeout: float | None, deadline: float | None) -> float:
        """An absolute deadline from either argument (never both), else the default."""
        if deadline is not None:
            if timeout is not None:
                raise TypeError("Give either timeout= or deadline=, not both.")
            return deadline
        return self.clock() + (self._default_timeout if timeout is None else timeout)

    async def ask(
        self,
        message: Message,
        *,
        priority: Priority,
        # the pykka-style keyword callers expect; it only ever becomes an absolute deadline
        timeout: float | None = None,  # noqa: ASYNC109
        deadline: float | None = None,
    ) -> Any:
        """Send ``message`` and wait for its answer, or raise the error it produced.

        ``deadline`` is on the ``anyio.current_time()`` clock; ``timeout`` is relative.
        """
        at = self.deadline_for(timeout, deadline)
        if self._state is _State.RUNNING:
            worker = self._mailbox.lend()
            if worker is not None:
                return await self._ask_direct(
                    Envelope(message, None, priority, at, current_call()), worker
                )
        event_class = self._event_class
        reply = Reply(None if event_class is None else event_class())
        envelope = Envelope(message, reply, priority, at, current_call())
        self._enqueue(envelope)
        loop = self._loop
        if loop is not None:
            # the deadline wakes the asker through ``Reply.expire`` (same clock as anyio's)
            timer = loop.call_at(envelope.deadline, reply.expire)
            try:
                value = await reply.wait()
            except BaseException:  # its own error, or the caller cancelled
                reply.abandoned = True
                raise
            finally:
                timer.cancel()
            if not reply.expired:
                return value
        else:
            with anyio.CancelScope(deadline=envelope.deadline):
                try:
                    return await reply.wait()
                except BaseException:  # its own error, the deadline, or the caller cancelled
                    reply.abandoned = True
                    raise
            # only reached when the deadline cancelled the wait
            if reply.done:  # answered in the very instant the deadline passed
                return await reply.wait()
        if not reply.started:
            self.stats.expired += 1  # it expired in the mailbox; the worker will skip it
        raise SystemTimeout(
            self.name,
            f"no answer to {type(message).__name__} before its deadline "
            f"({len(self._mailbox)} queued, {self._in_flight} in flight): the system is slow "
            f"or saturated; give the ask a longer deadline or look at systems.{self.name}",
        )

    async def _ask_direct(self, envelope: Envelope, worker: anyio.Event) -> Any:
        """Run the handler in the asker's task on a borrowed idle worker's slot.

        On asyncio the handler runs under an asyncio timeout, which stop() can also fire:
        it does what a cancel scope would for stop() and, for handlers that do not bound
        their own waits, the deadline, at a fraction of an anyio cancel scope's cost (one
        per ask was most of the fast path's). The asker needs no timer of its own: the
        handler ends by the deadline. It is inlined here rather than a coroutine of its
        own: one frame fewer per ask, on the hottest path.
        """
        failure: BaseException | None = None
        self._in_flight += 1
        try:
            if self.clock() >= envelope.deadline:
                self.stats.expired += 1
                raise self._dropped_error(envelope)
            if self._loop is None:
                return await self._call_under_scope(envelope)
            at = None if self._handler_keeps_deadline else envelope.deadline  # loop.time clock
            timeout = asyncio.timeout_at(at)
            self._direct.add(timeout)
            try:
                async with timeout:
                    return await self._handler(envelope)
            except TimeoutError:
                if not timeout.expired():
                    raise  # the handler's own, not ours
                if self._direct_cancelled:
                    raise self._stopped_error(envelope, "while handling") from None
                raise self._overran_error(envelope) from None
            finally:
                self._direct.discard(timeout)
        except CrosswalkSystemError:
            raise
        except Exception as exc:
            failure = exc  # a bug in the handler: the borrowed worker restarts (see give_back)
            raise
        finally:
            self._mailbox.give_back(worker, failure)
            self._done_one()

    async def _call_under_scope(self, envelope: Envelope) -> Any:
        """The handler under a cancel scope for stop() and the deadline (other backends)."""
        if self._handler_keeps_deadline:
            scope = anyio.CancelScope()
        else:
            scope = anyio.CancelScope(deadline=envelope.deadline)
        self._direct.add(scope)
        try:
            with scope:
                result = await self._handler(envelope)
        finally:
            self._direct.discard(scope)
        if scope.cancelled_caught:
            if self._direct_cancelled:
                raise self._stopped_error(envelope, "while handling")
            raise self._overran_error(envelope)
        return result

    def _cancel_direct(self) -> None:
        """Cancel the fast-path calls in flight; they answer ActorStopped."""
        self._direct_cancelled = True
        for call in self._direct:
            if isinstance(call, anyio.CancelScope):
                call.cancel()
            elif not call.expired():  # an expiring timeout cannot be moved; it fires anyway
                assert self._loop is not None
                call.reschedule(self._loop.time())

    def _done_one(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0 and self._state is not _State.RUNNING:
            self._idle.set()

    def _dropped_error(self, envelope: Envelope) -> SystemTimeout:
        return SystemTimeout(
            self.name,
            f"{type(envelope.message).__name__} waited in the mailbox past its "
            f"deadline and was dropped unsent; the system is saturated: give "
            f"it a longer deadline or lower the load",
        )

    def _overran_error(self, envelope: Envelope) -> SystemTimeout:
        return SystemTimeout(
            self.name,
            f"{type(envelope.message).__name__} did not finish before its deadline; "
            f"the call was cancelled",
        )

    def tell(
        self,
        message: Message,
        *,
        priority: Priority,
        timeout: float | None = None,
        deadline: float | None = None,
    ) -> None:
        """Queue ``message`` without waiting for an answer (raises Throttled if shed at once)."""
        self._enqueue(
            Envelope(message, None, priority, self.deadline_for(timeout, deadline), current_call())
        )

    def _enqueue(self, envelope: Envelope) -> None:
        if self._state is not _State.RUNNING:
            if self._state is _State.UNSTARTED:
                raise RuntimeError(
                    f"The {self.name} actor is not running: use 'async with' or "
                    f"'await tg.start(actor.run)' first."
                )
            raise ActorStopped(
                self.name,
                f"{self.name} actor stopped before handling {type(envelope.message).__name__}",
            )
        shed = self._mailbox.put(envelope, envelope.priority)
        if shed is None:
            return
        self.stats.shed[shed.priority] += 1
        error = Throttled(
            self.name,
            f"mailbox full ({self._mailbox.capacity} messages): {type(shed.message).__name__} "
            f"({shed.priority.name}) was shed for more urgent work; retry later, or raise "
            f"systems.{self.name}.mailbox if this is normal load",
        )
        if shed is envelope:
            raise error
        if shed.reply_to is not None:
            shed.reply_to.set_error(error)

    def _fail_queued(self) -> None:
        for envelope in self._mailbox.close():
            if envelope.reply_to is not None:
                envelope.reply_to.set_error(self._stopped_error(envelope, "before handling"))

    def _stopped_error(self, envelope: Envelope, when: str) -> ActorStopped:
        return ActorStopped(
            self.name, f"{self.name} actor stopped {when} {type(envelope.message).__name__}"
        )

    # ------------------------------------------------------------------ workers

    async def _supervise(self, index: int) -> None:
        streak = 0
        while True:
            try:
                await self._work()
                return  # the mailbox closed: a clean stop
            except _WorkerCrashed as crash:
                streak = streak + 1 if crash.args[0] == 0 else 1
                self.stats.restarts += 1
                delay = min(self._restart_cap, self._restart_base * 2 ** (streak - 1))
                log.warning(
                    "%s worker %d crashed (%r); restarting in %.3f s",
                    self.name,
                    index,
                    crash.__cause__,
                    delay,
                )
                await anyio.sleep(delay)

    async def _work(self) -> None:
        handled = 0  # since this worker (re)started: a crash right after a restart backs off more
        while True:
            try:
                envelope = await self._mailbox.get()
            except MailboxClosed:
                return
            except LoanFailed as failed:  # lent to a fast-path ask whose handler had a bug
                raise _WorkerCrashed(handled) from failed.__cause__
            reply = envelope.reply_to
            if reply is not None:
                if reply.abandoned:
                    continue  # counted as expired by its asker if its deadline passed
                reply.started = True
            if self.clock() >= envelope.deadline:
                self.stats.expired += 1
                if reply is not None:
                    reply.set_error(self._dropped_error(envelope))
                continue
            self._in_flight += 1
            try:
                await self._handle(envelope)
            except Exception as exc:
                raise _WorkerCrashed(handled) from exc
            finally:
                self._done_one()
            handled += 1

    async def _handle(self, envelope: Envelope) -> None:
        reply = envelope.reply_to
        set_call(envelope.call)  # this worker task now works for the asker
        try:
            if self._handler_keeps_deadline:
                result = await self._handler(envelope)
                if reply is not None:
                    reply.set_result(result)
                return
            with anyio.CancelScope(deadline=envelope.deadline) as scope:
                result = await self._handler(envelope)
        except CrosswalkSystemError as exc:
            if reply is not None:
                reply.set_error(exc)
            else:  # nobody is waiting for a tell: leave a trace of its failure
                log.info(
                    "%s: %s (told) failed: %s", self.name, type(envelope.message).__name__, exc
                )
            return
        except anyio.get_cancelled_exc_class():
            if reply is not None:
                reply.set_error(self._stopped_error(envelope, "while handling"))
            raise
        except Exception as exc:
            if reply is not None:
                reply.set_error(exc)
            raise
        if scope.cancelled_caught:
            if reply is not None:
                reply.set_error(self._overran_error(envelope))
        elif reply is not None:
            reply.set_result(result)
