"""One back-office system's actor: the only way the rest of Crosswalk talks to it.

Public API::

    async with SystemActor(connector, policy) as erp:        # or: await tg.start(erp.run)
        customers = await erp.ask(GetCustomers(("1000042",)), priority=Priority.INTERACTIVE,
                                  timeout=2.0)               # or deadline=anyio.current_time()+2
        erp.tell(SetEntitlement(...), priority=Priority.SYNC)  # fire and forget
        erp.last_known_good(GetCustomers(("1000042",)))      # -> (value, age_seconds) | None
        erp.state        # SystemState: healthy, breaker, queue_depth, p50_latency_ms
        erp.snapshot()   # StatsSnapshot: counters for the metrics module

``ask`` answers what the connector answers for that message (``actors.messages`` documents
each type) or raises an ``actors.errors`` error: ``BreakerOpen`` at once while the breaker
is open, ``Throttled`` when shed from a full mailbox or throttled by the vendor,
``SystemTimeout`` past the deadline, ``ActorStopped`` when the actor stops first.

Each message goes: mailbox (priority, FIFO within a class) -> deadline check -> breaker
admission -> vendor pause (``Retry-After``) -> rate limiter -> connector call with a
per-call timeout -> retry with full-jitter backoff, for reads only. For HTTP connectors the
rate limiter is applied to every vendor call (``HttpConnector.pace``), since one message
may fan out into several calls (Stripe has no batch retrieve). The breaker is asked
before the rate limiter so that refusals while open cost no tokens and no waiting. The
worker pool (``workers`` in the policy) bounds calls in flight. Identical concurrent reads
share one upstream call; successful reads fill the last-known-good cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from contextvars import ContextVar, Token
from typing import Any

import anyio
from anyio.abc import TaskStatus

from actors import tracing
from actors._actor import Actor
from actors._breaker import AsyncBreaker, Ticket, counts_as_failure
from actors._cache import LastKnownGood
from actors._coalesce import Coalescer
from actors._envelope import Envelope
from actors._rate import SharedRate
from actors._retry import full_jitter, may_retry
from actors._stats import ActorStats, StatsSnapshot, SystemState
from actors._tasks import RunsInOwnGroup
from actors.calls import CallObserver
from actors.connector import Connector, HttpConnector
from actors.context import current_call, reset_attempt, set_attempt
from actors.errors import CrosswalkSystemError, SystemTimeout, Throttled
from actors.messages import Message, Priority
from actors.policy import SystemPolicy

__all__ = ["SystemActor"]


class _Pacing:
    """Whether this call's time ran out while it waited for a rate token between calls."""

    __slots__ = ("cut",)

    def __init__(self) -> None:
        self.cut = False


# the call in progress in this task (and the tasks a connector starts for fan-out)
_PACING: ContextVar[_Pacing | None] = ContextVar("crosswalk_pacing", default=None)

log = logging.getLogger(__name__)


class SystemActor(RunsInOwnGroup):
    """The actor around one system's connector, with that system's resilience policy.

    It owns the connector's lifecycle: entering the actor opens the connector, leaving it
    stops the workers (failing pending asks with ``ActorStopped``) and closes it.
    """

    def __init__(
        self,
        connector: Connector,
        policy: SystemPolicy,
        *,
        rng: random.Random | None = None,
        on_call: CallObserver | None = None,
    ) -> None:
        self.system = str(policy.system)
        self.policy = policy
        self._connector = connector
        self._rng = rng or random.Random()
        self.stats = ActorStats(self.system)
        self._breaker = AsyncBreaker(
            self.system,
            fail_max=policy.breaker.fail_max,
            reset_timeout=policy.breaker.reset_timeout,
            success_threshold=policy.breaker.success_threshold,
            half_open_calls=policy.breaker.half_open_calls,
            on_transition=self._on_transition,
        )
        # a leaky bucket of `burst` tokens that refills at `per_second` (times this
        # replica's share of the system's quota: set_rate_share)
        self._limiter = SharedRate(policy.rate)
        self._cache = LastKnownGood(size=policy.cache.size, ttl=policy.cache.ttl)
        self._coalescer = Coalescer(self.system, self.stats)
        self._actor = Actor(
            self.system,
            self._handle,
            workers=policy.workers,
            capacity=policy.mailbox,
            default_timeout=policy.ask_timeout,
            stats=self.stats,
            handler_keeps_deadline=True,  # see _call_once: every wait is bounded
        )
        # HTTP connectors take a token per vendor call (a message may fan out into several);
        # other connectors (fakes, in-process) take one per message attempt, here
        self._paced = isinstance(connector, HttpConnector)
        if isinstance(connector, HttpConnector):
            connector.pace = self._pace
            if on_call is not None:
                connector.observe = on_call
        self._paused_until = 0.0
        self._healthy: bool | None = None
        self._health_detail = "not pinged yet"

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Open the connector, serve until ``stop()``, then close it."""
        async with self._connector, anyio.create_task_group() as tg:
            await tg.start(self._actor.run)
            # the same clock without anyio's backend lookup (a put per successful read)
            self._cache.clock = self._actor.clock
            if self.policy.health_interval > 0:
                tg.start_soon(self._watch_health, name=f"{self.system}-health")
            task_status.started()
            await self._actor.wait_stopped()
            tg.cancel_scope.cancel()

    def stop(self) -> None:
        """Stop taking messages; pending asks fail with ActorStopped."""
        self._actor.stop()

    # ------------------------------------------------------------------ asking

    async def ask(
        self,
        message: Message,
        *,
        priority: Priority,
        # the pykka-style keyword callers expect; it only ever becomes an absolute deadline
        timeout: float | None = None,  # noqa: ASYNC109
        deadline: float | None = None,
    ) -> Any:
        """Send ``message`` and wait for the answer (see the module docstring)."""
        deadline = self._actor.deadline_for(timeout, deadline)
        if tracing.enabled():
            name = f"actor.{self.system} {type(message).__name__}"
            attributes = {"crosswalk.system": str(self.system), "crosswalk.priority": priority.name}
            call = current_call()
            if call is not None:
                attributes["crosswalk.correlation_id"] = call.correlation_id
            with tracing.span(name, attributes):
                return await self._ask(message, priority, deadline)
        return await self._ask(message, priority, deadline)

    async def _ask(self, message: Message, priority: Priority, deadline: float) -> Any:
        if not message.read:
            return await self._actor.ask(message, priority=priority, deadline=deadline)
        return await self._coalescer.run(
            message,
            priority,
            deadline,
            lambda: self._actor.ask(message, priority=priority, deadline=deadline),
        )

    def tell(
        self,
        message: Message,
        *,
        priority: Priority,
        timeout: float | None = None,
        deadline: float | None = None,
    ) -> None:
        """Queue ``message`` without waiting; raises Throttled if it is shed at once."""
        self._actor.tell(message, priority=priority, timeout=timeout, deadline=deadline)

    def last_known_good(self, message: Message) -> tuple[Any, float] | None:
        """The last successful answer to this read and its age in seconds, within the TTL."""
        try:
            return self._cache.get(message)
        except TypeError:  # an unhashable message was never cached
            return None

    async def ping(self) -> bool:
        """Ping the system now (outside the mailbox); record and answer whether it is up."""
        try:
            with anyio.fail_after(self.policy.timeout):
                seconds = await self._connector.ping()
        except TimeoutError:
            self._healthy, self._health_detail = (
                False,
                f"ping: no answer in {self.policy.timeout} s",
            )
        except Exception as exc:  # a boundary: whatever the ping raised, the system is down
            self._healthy, self._health_detail = False, f"ping failed: {exc}"
        else:
            self._healthy, self._health_detail = True, f"ping {seconds * 1000:.1f} ms"
        return self._healthy

    def set_rate_share(self, share: float) -> None:
        """Spend ``share`` (0 to 1) of the policy rate: this replica's part of the quota."""
        self._limiter.set_share(share)

    @property
    def rate_share(self) -> float:
        return self._limiter.share

    # ------------------------------------------------------------------ observing

    @property
    def breaker_state(self) -> str:
        return self._breaker.state

    @property
    def state(self) -> SystemState:
        p50 = self.stats.p50()
        p99 = self.stats.p99()
        return SystemState(
            system=self.system,
            healthy=self._healthy,
            health_detail=self._health_detail,
            breaker=self._breaker.state,
            queue_depth=len(self._actor.mailbox),
            p50_latency_ms=None if p50 is None else p50 * 1000,
            p99_latency_ms=None if p99 is None else p99 * 1000,
        )

    def snapshot(self) -> StatsSnapshot:
        return self.stats.snapshot(
            breaker_state=self._breaker.state,
            mailbox_depth=self._actor.mailbox.depths(),
            in_flight=self._actor.in_flight,
        )

    # ------------------------------------------------------------------ the pipeline

    async def _handle(self, envelope: Envelope) -> Any:
        message = envelope.message
        attempts = self.policy.retry.attempts if message.read else 1
        attempt = 1
        # set only once a retry happens: the first try costs no context change
        retrying: Token[int] | None = None
        try:
            while True:
                try:
                    result = await self._call_once(message, envelope.deadline)
                except CrosswalkSystemError as exc:
                    if isinstance(exc, Throttled) and exc.retry_after:
                        # never longer than policy allows, whatever a connector passed on
                        self._pause(min(exc.retry_after, self.policy.bounds.max_retry_after))
                    if attempt >= attempts or not may_retry(message, exc):
                        raise
                    delay = full_jitter(
                        attempt,
                        base=self.policy.retry.base,
                        cap=self.policy.retry.cap,
                        rng=self._rng,
                    )
                    if max(anyio.current_time() + delay, self._paused_until) >= envelope.deadline:
                        raise  # no time left for another try: answer the real error now
                    self.stats.retries += 1
                    attempt += 1
                    if retrying is None:
                        retrying = set_attempt(attempt)
                    else:
                        set_attempt(attempt)
                    await anyio.sleep(delay)
                else:
                    if message.read:
                        self._remember(message, result)
                    return result
        finally:
            if retrying is not None:
                reset_attempt(retrying)

    async def _call_once(self, message: Message, deadline: float) -> Any:
        ticket = self._breaker.admit()  # raises BreakerOpen without a call
        try:
            if self._paused_until:  # only set while a vendor's back-off is in force
                await self._wait_out_pause(message, deadline)
            if self._paced:
                pass  # the connector takes a token before each of its HTTP calls
            elif not self._limiter.has_capacity():
                # only a call that must wait for a token pays for a cancel scope
                with anyio.CancelScope(deadline=deadline) as scope:
                    await self._limiter.acquire()
                if scope.cancelled_caught:
                    raise Throttled(
                        self.system,
                        f"{type(message).__name__} not sent: waiting for the rate limit "
                        f"(systems.{self.system}.rate) ran past its deadline",
                    )
            else:
                await self._limiter.acquire()
            now = self._actor.clock()
            budget = min(self.policy.timeout, deadline - now)
            if budget <= 0:
                raise SystemTimeout(
                    self.system,
                    f"{type(message).__name__} not sent: its deadline passed while it waited "
                    f"for the rate limit or the vendor's back-off",
                )
        except BaseException:
            self._breaker.release(ticket)  # no call was made
            raise
        self.stats.calls += 1
        pacing = _Pacing()
        context = _PACING.set(pacing)
        started = time.perf_counter()
        try:
            if self._actor.loop is not None:
                # what anyio.fail_after does (TimeoutError at the deadline), at a fraction of
                # an anyio cancel scope's cost: this runs once per upstream call
                async with asyncio.timeout_at(now + budget):
                    result = await self._connector.handle(message)
            else:
                scope = anyio.CancelScope(deadline=now + budget)
                with scope:
                    result = await self._connector.handle(message)
                if scope.cancelled_caught and self._actor.clock() >= scope.deadline:
                    raise TimeoutError
        except anyio.get_cancelled_exc_class():
            if pacing.cut:
                self._breaker.release(ticket)  # our own rate limit, not the system, was slow
            elif anyio.current_time() >= deadline:
                # the ask's deadline cut the call short: a slow system, so count it
                self._outcome(ticket, started, self._timeout(message, budget))
            else:
                self._breaker.release(ticket)  # stopped from outside: no verdict
            raise
        except SystemTimeout as exc:
            self._outcome(ticket, started, exc)
            raise
        except TimeoutError:
            if pacing.cut:
                self._breaker.release(ticket)
                raise Throttled(
                    self.system,
                    f"{type(message).__name__} cut short: waiting for the rate limit "
                    f"(systems.{self.system}.rate) between its calls ran past {budget:.3f} s",
                ) from None
            error = self._timeout(message, budget)
            self._outcome(ticket, started, error)
            raise error from None
        except Exception as exc:
            self._outcome(ticket, started, exc)
            raise
        finally:
            _PACING.reset(context)
        self._outcome(ticket, started, None)
        return result

    async def _pace(self) -> None:
        """Take one rate token before an HTTP call (installed as the connector's ``pace``)."""
        if self._limiter.has_capacity():
            await self._limiter.acquire()  # a token is free: no wait
            return
        self.stats.throttle_waits += 1
        began = time.perf_counter()
        try:
            await self._limiter.acquire()
        except BaseException:
            # tell _call_once that a timeout hit while waiting on our limiter, not upstream
            pacing = _PACING.get()
            if pacing is not None:
                pacing.cut = True
            raise
        finally:
            self.stats.throttle_wait_seconds += time.perf_counter() - began

    def _timeout(self, message: Message, budget: float) -> SystemTimeout:
        return SystemTimeout(
            self.system,
            f"{type(message).__name__} got no answer within {budget:.3f} s and was cancelled "
            f"(per-call timeout systems.{self.system}.timeout = {self.policy.timeout} s, or "
            f"the ask's deadline)",
        )

    def _outcome(self, ticket: Ticket, started: float, error: BaseException | None) -> None:
        self.stats.observe(time.perf_counter() - started)
        if error is not None and counts_as_failure(error):
            self.stats.failures += 1
        self._breaker.record(ticket, error)

    def _pause(self, seconds: float) -> None:
        """Hold every outbound call until the vendor's Retry-After has passed."""
        until = anyio.current_time() + seconds
        if until > self._paused_until:
            log.info("%s asked us to back off for %.2f s", self.system, seconds)
            self._paused_until = until

    async def _wait_out_pause(self, message: Message, deadline: float) -> None:
        wait = self._paused_until - anyio.current_time()
        if wait <= 0:
            self._paused_until = 0.0  # over: later calls skip this check
            return
        if self._paused_until >= deadline:
            raise Throttled(
                self.system,
                f"{type(message).__name__} not sent: the system asked us to back off for "
                f"{wait:.2f} s more, past this call's deadline",
                retry_after=wait,
            )
        await anyio.sleep(wait)

    def _remember(self, message: Message, result: Any) -> None:
        with contextlib.suppress(TypeError):  # an unhashable read has nothing to key it by
            self._cache.put(message, result)

    def _on_transition(self, old: str, new: str) -> None:
        self.stats.transition(old, new)
        log.warning("%s circuit breaker %s -> %s", self.system, old, new)

    async def _watch_health(self) -> None:
        while True:
            await self.ping()
            await anyio.sleep(self.policy.health_interval)
