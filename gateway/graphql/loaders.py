"""Per-request DataLoaders: batch one request's reads into few upstream calls.

Each loader collects the native ids its resolvers ask for during one tick of the event
loop and sends a single batched message (``actors.messages``: ``GetCustomers``,
``GetInvoices``, ``GetCases``, ...) to that system's actor, at ``INTERACTIVE`` priority
with the request's deadline. The four systems' loaders dispatch independently, so the
systems are asked in parallel.

Every key resolves to a ``Fetched``: the value (or ``None`` if the system has no such
record), when it was read, and, if the system failed, either the last-known-good value
marked stale with its age or the coded error. A resolver never sees an exception from a
loader; it decides from ``Fetched`` whether to answer stale data or raise the error.
Each outcome is also recorded per (system, native id) for the ``freshness`` field.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

import anyio

from actors.errors import CrosswalkSystemError
from actors.messages import Message, Priority
from canonical import (
    Case,
    Customer,
    Entitlement,
    Invoice,
    Opportunity,
    Order,
    Subscription,
    System,
)
from gateway.governance.readmodel import ReadModelPolicy
from gateway.graphql.errors import CodedError, ErrorCode, from_system_error
from gateway.readmodel.kinds import Kind, SliceSpec, slice_of
from gateway.readmodel.model import Change, ReadModel, SliceView, version_at
from gateway.readmodel.quota import Quota

__all__ = ["MAX_BATCH", "Fetched", "LoaderContext", "Loaders", "SystemLoader"]

T = TypeVar("T")

#: ids per upstream message; connectors split further where a vendor needs it
MAX_BATCH = 100


@dataclass(frozen=True, slots=True)
class Fetched(Generic[T]):
    """One key's answer from one system in this request."""

    system: System
    value: T | None
    as_of: datetime
    #: True when ``value`` is last-known-good data, not a fresh answer
    stale: bool = False
    age_seconds: float | None = None
    #: why the fresh read failed (set whether or not stale data was found)
    error: CodedError | None = None
    #: where the value came from: LIVE (asked the system now), EVENTS, CATCH_UP or
    #: READ_THROUGH (the read model), LAST_KNOWN_GOOD (the actor's cache)
    source: str = "LIVE"
    #: why a read-model answer is stale although the system did not fail
    reason: str | None = None

    def value_or_raise(self) -> T | None:
        """The value (fresh or stale); raise the coded error if there is neither."""
        if self.error is not None and not self.stale:
            raise self.error
        return self.value


class LoaderContext(Protocol):
    """What the loaders read of their request (``gateway.graphql.context.Context``, which
    builds them): the runtime to ask and the deadline every ask carries."""

    @property
    def runtime(self) -> Any: ...

    @property
    def deadline(self) -> float: ...


class SystemLoader(Generic[T]):
    """The batching loader over one batched read message of one system.

    ``load`` hands out one future per id; the first load of a batch schedules its
    dispatch for the next turn of the event loop, when the sibling resolvers have made
    theirs, and the dispatch asks the actor once for the whole batch and settles every
    future from the reply. Leaner than strawberry's general ``DataLoader`` (no task and
    batch objects per key, no custom cache): one future per id and one task per batch.
    """

    def __init__(
        self,
        context: LoaderContext,
        loaders: Loaders,
        system: System,
        build: Callable[[tuple[str, ...]], Message],
        spec: SliceSpec | None = None,
    ) -> None:
        self.context = context
        self.loaders = loaders
        self.system = system
        self.build = build
        #: what the read model keeps of this loader's records (None: it keeps nothing)
        self.spec = spec
        self._loop = asyncio.get_running_loop()
        #: id -> its future: an id asked twice in a request is read once
        self._futures: dict[str, asyncio.Future[Fetched[T]]] = {}
        #: the ids of the batch not yet dispatched
        self._batch: list[str] | None = None
        #: the dispatch tasks in flight (held so they are not collected mid-ask)
        self._tasks: set[asyncio.Task[None]] = set()

    def load(self, key: str) -> Awaitable[Fetched[T]]:
        future = self._futures.get(key)
        if future is None:
            future = self._futures[key] = self._loop.create_future()
            batch = self._batch
            if batch is None or len(batch) >= MAX_BATCH:
                batch = self._batch = []
                self._loop.call_soon(self._dispatch, batch)
            batch.append(key)
        self.loaders.pending.setdefault((self.system, key), []).append(future)
        return future

    def _dispatch(self, keys: list[str]) -> None:
        if self._batch is keys:
            self._batch = None
        if self.loaders.released:
            error = RuntimeError("This request has been answered: its loaders take no more loads.")
            for key in keys:
                future = self._futures.get(key)
                if future is not None and not future.done():
                    future.set_exception(error)
            return
        task = self._loop.create_task(self._settle(keys))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forget(self) -> None:
        """Drop the futures of an answered request (they hold its answers)."""
        self._futures.clear()

    async def _settle(self, keys: list[str]) -> None:
        """Ask the actor once for the batch and settle every key's future from the answer
        (one coroutine per batch: the read itself is inlined)."""
        futures = [self._futures[key] for key in keys if key in self._futures]
        if len(futures) != len(keys):
            return  # the request was answered before this batch went out
        if all(f.cancelled() for f in futures):
            return  # nobody waits: no upstream call
        try:
            model: ReadModel | None = getattr(self.context.runtime, "read_model", None)
            local: dict[str, tuple[SliceView, float]] = {}
            if model is not None and self.spec is not None:
                answered, keys, local = await self._from_read_model(model, self.spec, keys)
                if answered:
                    self._record(list(answered), list(answered.values()))
                    for key, result in answered.items():
                        for future in self._waiting(key):
                            future.set_result(result)
                    if not keys:
                        return
                    futures = [self._futures[key] for key in keys if key in self._futures]
            ids = tuple(sorted(set(keys)))  # one message shape per id set: coalescing, LKG
            message = self.build(ids)
            actor = self.context.runtime.systems[self.system]
            started = time.time()
            self.loaders.upstream_asks += 1
            try:
                answer: dict[str, T] = await actor.ask(
                    message, priority=Priority.INTERACTIVE, deadline=self.context.deadline
                )
            except CrosswalkSystemError as exc:
                results = self._fallback(actor, message, keys, from_system_error(exc), local)
            except TimeoutError:
                error = CodedError(
                    ErrorCode.SYSTEM_TIMEOUT,
                    f"{self.system}: no answer before the request's deadline",
                    system=str(self.system),
                )
                results = self._fallback(actor, message, keys, error, local)
            else:
                now = datetime.now(UTC)
                results = [Fetched(self.system, answer.get(key), now) for key in keys]
                self._record(keys, results)
                if model is not None and self.spec is not None:
                    self._write_through(model, self.spec, keys, answer, started)
        except Exception as exc:  # every waiter gets the failure
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        for future, result in zip(futures, results, strict=True):
            if not future.done():
                future.set_result(result)

    def _waiting(self, key: str) -> list[asyncio.Future[Fetched[T]]]:
        future = self._futures.get(key)
        return [future] if future is not None and not future.done() else []

    async def _from_read_model(
        self, model: ReadModel, spec: SliceSpec, keys: list[str]
    ) -> tuple[dict[str, Fetched[T]], list[str], dict[str, tuple[SliceView, float]]]:
        """Answer what the read model holds within budget; say which keys still need the
        system (missing ones, and past-budget ones the quota and breaker let refresh now)."""
        budget = self.loaders.budget(spec)
        now = time.time()
        answered: dict[str, Fetched[T]] = {}
        ask: list[str] = []
        past: list[str] = []
        local: dict[str, tuple[SliceView, float]] = {}
        for key in keys:
            view = model.slice(spec.system, spec.kind, key, many=spec.many)
            if view is None:
                ask.append(key)
                continue
            age = max(0.0, now - view.as_of)
            local[key] = (view, age)
            if age <= budget:
                answered[key] = Fetched(
                    self.system,
                    view.value,
                    datetime.fromtimestamp(view.as_of, UTC),
                    age_seconds=age,
                    source=str(view.source or "CATCH_UP"),
                )
            else:
                past.append(key)
        quota: Quota | None = getattr(self.context.runtime, "quota", None)
        if ask and quota is not None:
            # records nobody has read yet: worth waiting for a token, within the deadline
            wait = self.context.deadline - anyio.current_time()
            if not await quota.take(self.system, "interactive", within=wait):
                error = CodedError(
                    ErrorCode.THROTTLED,
                    f"{self.system}: the interactive quota had no call free before the "
                    "request's deadline, and the read model does not hold these records yet",
                    system=str(self.system),
                )
                actor = self.context.runtime.systems[self.system]
                results = self._fallback(actor, self.build(tuple(ask)), ask, error, record=False)
                answered.update(zip(ask, results, strict=True))
                ask = []
        if past:
            actor = self.context.runtime.systems[self.system]
            reason = None
            if actor.breaker_state == "open":
                reason = f"{self.system} is unavailable (circuit breaker open)"
            elif (
                quota is not None
                and not ask
                and not await quota.try_take(self.system, "interactive")
            ):
                reason = f"{self.system}'s interactive quota is spent for now"
            if reason is None:
                ask.extend(past)
            else:
                for key in past:
                    view, age = local[key]
                    answered[key] = Fetched(
                        self.system,
                        view.value,
                        datetime.fromtimestamp(view.as_of, UTC),
                        stale=True,
                        age_seconds=age,
                        source=str(view.source or "CATCH_UP"),
                        reason=f"older than its {budget:g} s budget: {reason}",
                    )
        return answered, ask, local

    def _write_through(
        self,
        model: ReadModel,
        spec: SliceSpec,
        keys: Sequence[str],
        answer: dict[str, Any],
        started: float,
    ) -> None:
        version = version_at(started)
        changes: list[Change] = []
        cover: list[tuple[System, Kind, str, float]] = []
        for key in keys:
            value = answer.get(key)
            if spec.many:
                values: tuple[Any, ...] = value or ()
            elif value is None:
                continue  # no such record: nothing to keep, nothing covered
            else:
                values = (value,)
            try:
                changes.extend(model.slice_changes(spec.system, spec.kind, key, values, version))
            except TypeError:
                return  # an answer of a shape the read model does not keep
            cover.append((spec.system, spec.kind, key, started))
        model.offer_read_through(changes, cover)

    def _fallback(
        self,
        actor: Any,
        message: Message,
        keys: Sequence[str],
        error: CodedError,
        local: dict[str, tuple[SliceView, float]] | None = None,
        *,
        record: bool = True,
    ) -> list[Fetched[T]]:
        """The read model's copy, else last-known-good for the whole batch, else per
        single-id message, else the error."""
        now = datetime.now(UTC)
        batch = actor.last_known_good(message)
        results: list[Fetched[T]] = []
        for key in keys:
            if local and key in local:
                view, age = local[key]
                results.append(
                    Fetched(
                        self.system,
                        view.value,
                        datetime.fromtimestamp(view.as_of, UTC),
                        stale=True,
                        age_seconds=age,
                        error=error,
                        source=str(view.source or "CATCH_UP"),
                    )
                )
                continue
            found = batch
            if found is None or key not in found[0]:
                found = actor.last_known_good(self.build((key,)))
            if found is not None and key in found[0]:
                value, age = found
                results.append(
                    Fetched(
                        self.system,
                        value[key],
                        now - timedelta(seconds=age),
                        stale=True,
                        age_seconds=age,
                        error=error,
                        source="LAST_KNOWN_GOOD",
                    )
                )
            else:
                results.append(Fetched(self.system, None, now, error=error))
        if record:
            self._record(keys, results)
        return results

    def _record(self, keys: Sequence[str], results: Sequence[Fetched[T]]) -> None:
        for key, result in zip(keys, results, strict=True):
            self.loaders.outcomes.setdefault((self.system, key), []).append(result)


class Loaders:
    """The DataLoaders of one request, one per batched read message."""

    def __init__(self, context: LoaderContext) -> None:
        self.context = context
        self.started = time.monotonic()
        #: upstream asks this request made (for tests and diagnostics)
        self.upstream_asks = 0
        #: every outcome per (system, native id), for the freshness field
        self.outcomes: dict[tuple[System, str], list[Fetched[Any]]] = {}
        #: loads not yet awaited per (system, native id), so freshness can wait for them
        self.pending: dict[tuple[System, str], list[Awaitable[Any]]] = {}

        self._loaders: dict[str, SystemLoader[Any]] = {}
        #: the request has been answered: batches not yet dispatched make no upstream call
        self.released = False
        #: the request's own freshness bound in seconds (``maxAge``), if it gave one
        self.max_age: float | None = None

    def budget(self, spec: SliceSpec) -> float:
        """How old this request lets ``spec``'s records be: the policy's budget for the
        field group, or the request's ``maxAge`` if tighter."""
        policies = getattr(self.context.runtime, "policies", None)
        policy: ReadModelPolicy | None = getattr(policies, "readmodel", None)
        group = spec.loader.partition(":")[0]
        budget = policy.budget(spec.system, group) if policy is not None else 60.0
        return budget if self.max_age is None else min(budget, self.max_age)

    # DataLoaders are built on first use: a request that reads cases alone builds one.
    # Each is one of the read model's slices (gateway.readmodel.kinds.SLICES): its system,
    # its batched message, and what the read model keeps of its records.
    def _loader(self, name: str) -> Any:
        loader = self._loaders.get(name)
        if loader is None:
            spec = slice_of(name)
            assert spec is not None, f"no slice named {name!r}"
            loader = self._loaders[name] = SystemLoader(
                self.context, self, spec.system, spec.build, spec
            )
        return loader

    def customers(self, system: System) -> SystemLoader[Customer]:
        """GetCustomers of ``system``, keyed by its native customer id."""
        loader: SystemLoader[Customer] = self._loader(f"customers:{system}")
        return loader

    @property
    def orders(self) -> SystemLoader[tuple[Order, ...]]:
        return self._loader("orders")  # type: ignore[no-any-return]

    @property
    def billing_documents(self) -> SystemLoader[tuple[Invoice, ...]]:
        return self._loader("billing_documents")  # type: ignore[no-any-return]

    @property
    def invoices(self) -> SystemLoader[tuple[Invoice, ...]]:
        return self._loader("invoices")  # type: ignore[no-any-return]

    @property
    def subscriptions(self) -> SystemLoader[tuple[Subscription, ...]]:
        return self._loader("subscriptions")  # type: ignore[no-any-return]

    @property
    def opportunities(self) -> SystemLoader[tuple[Opportunity, ...]]:
        return self._loader("opportunities")  # type: ignore[no-any-return]

    @property
    def cases(self) -> SystemLoader[tuple[Case, ...]]:
        return self._loader("cases")  # type: ignore[no-any-return]

    @property
    def entitlements(self) -> SystemLoader[Entitlement]:
        return self._loader("entitlements")  # type: ignore[no-any-return]

    async def settled(self, keys: Sequence[tuple[System, str]]) -> None:
        """Wait until every load started so far for these keys has finished."""
        # let sibling resolvers of the same object start their loads first
        await anyio.lowlevel.checkpoint()
        await anyio.lowlevel.checkpoint()
        for key in keys:
            for future in self.pending.get(key, ()):
                await future

    def outcomes_for(self, system: System, native_id: str) -> list[Fetched[Any]]:
        return self.outcomes.get((system, native_id), [])

    def release(self) -> None:
        """Drop this request's loaders once it has been answered.

        A request's objects form reference cycles (context -> loaders -> context, a
        DataLoader -> its batch -> its tasks -> the DataLoader) that plain reference
        counting cannot free: left alone, every request's loaders, futures and answers
        wait for the cyclic garbage collector, which then walks them again and again.
        """
        self.released = True
        for loader in self._loaders.values():
            loader.forget()
        self._loaders.clear()
        self.pending.clear()
        self.outcomes.clear()
