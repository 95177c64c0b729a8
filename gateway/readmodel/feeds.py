"""What keeps the read model current: the inbox's events and each system's change feeds.

- **Events.** Webhooks land verified in the inbox (``gateway.webhooks``). The consumer
  takes the events the read model has not applied, oldest first, and reads back what
  each names (the customer's slice, or the one record): a vendor event is a notice, and
  its payload may be older than what a later read already showed (Stripe stamps events
  to the second; SAP's carry only keys). The records and the events' "applied" marks
  commit in one unit, so a crash mid-batch re-applies the batch and nothing twice shows.
- **Catch-up.** Per system, on a schedule (``[catch_up] interval``) and at once when a
  gap is suspected (a restart, an event the consumer could not read back, a webhook
  refused), each change feed (``actors.messages.FEEDS``) is read from the cursor stored
  in the store to its end. The first pass has no cursor: it lists every record (the
  initial load). Each page's records and the cursor after it commit together, so a pass
  killed mid-page resumes at the last committed page: no gap, nothing applied twice.

Both spend the system's ``catch_up`` quota share and ask the actors at SYNC priority,
behind every interactive read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import anyio
from anyio.abc import TaskStatus

from actors import Systems
from actors.errors import CrosswalkSystemError, NotFound
from actors.messages import (
    FEEDS,
    ChangedRecord,
    ChangePage,
    GetBillingDocument,
    GetChanges,
    GetOpportunity,
    Priority,
)
from canonical import System
from gateway.governance.readmodel import ReadModelPolicy
from gateway.observability.correlation import working_for
from gateway.readmodel.kinds import Kind, spec_for
from gateway.readmodel.model import Applied, Change, ReadModel, Source, version_at
from gateway.readmodel.quota import Quota
from gateway.store import InboxEvent

__all__ = ["Feeds", "records_named_by", "system_feeds"]

log = logging.getLogger(__name__)

#: inbox events taken per batch
EVENT_BATCH = 100
#: how often the consumer looks for events no in-process arrival woke it for (another
#: process's webhook receiver); this process's receiver wakes it at once
EVENT_POLL = 1.0
#: longest wait for one actor answer
ASK_TIMEOUT = 30.0
#: pages one feed may read in one pass (the rest waits for the next pass)
MAX_PAGES_PER_PASS = 1000


#: on_events(tx, system=, events=): inside the unit that applies a batch of events
OnEvents = Callable[..., Awaitable[None]]
#: on_applied(system, applied changes): after they were committed
OnApplied = Callable[[System, Sequence[Applied]], Awaitable[None]]
#: progress(system, feed, records on the page, feed reached its end)
Progress = Callable[[System, str, int, bool], None]


def system_feeds() -> dict[System, tuple[str, ...]]:
    return {System(name): feeds for name, feeds in FEEDS.items()}


def records_named_by(event: InboxEvent) -> list[ChangedRecord]:
    """The records a stored canonical event names (to be read back)."""
    envelope = event.payload if isinstance(event.payload, Mapping) else {}
    kind = str(envelope.get("type") or "")
    subject = str(envelope.get("subject") or "")
    data = envelope.get("data")
    system, _, rest = kind.partition(".")
    if system == "billing":
        obj = ((data or {}).get("data") or {}).get("object") if isinstance(data, Mapping) else None
        if not isinstance(obj, Mapping) or not obj.get("id"):
            return []
        owner = obj.get("customer")
        customer = str(owner["id"] if isinstance(owner, Mapping) else owner) if owner else None
        if rest.startswith("subscription."):
            return [ChangedRecord("subscription", str(obj["id"]), customer)]
        if rest.startswith("invoice."):
            return [ChangedRecord("invoice", str(obj["id"]), customer)]
        if rest.startswith("customer."):
            deleted = rest == "customer.deleted"
            return [ChangedRecord("customer", str(obj["id"]), str(obj["id"]), deleted=deleted)]
        return []
    if system == "support":
        detail = (data or {}).get("detail") if isinstance(data, Mapping) else None
        detail = detail if isinstance(detail, Mapping) else {}
        if rest.startswith("ticket."):
            org = detail.get("organization_id")
            return [ChangedRecord("case", subject, str(org) if org not in (None, "") else None)]
        if rest.startswith("organization."):
            return [
                ChangedRecord("customer", subject, subject),
                ChangedRecord("entitlement", subject, subject),
            ]
        return []
    if system == "crm":
        payload = (data or {}).get("data", {}).get("payload") if isinstance(data, Mapping) else None
        payload = payload if isinstance(payload, Mapping) else {}
        header = payload.get("ChangeEventHeader") or {}
        ids = header.get("recordIds") if isinstance(header, Mapping) else None
        ids = [str(i) for i in ids] if isinstance(ids, list) else [subject]
        deleted = rest.endswith(".deleted")
        if rest.startswith("opportunity."):
            account = payload.get("AccountId")
            return [
                ChangedRecord("opportunity", i, str(account) if account else None, deleted=deleted)
                for i in ids
            ]
        if rest.startswith("account."):
            return [ChangedRecord("customer", i, i, deleted=deleted) for i in ids]
        return []
    if system == "erp":
        if rest.startswith("billingdocument."):
            return [ChangedRecord("billing_document", subject, None)]
        if rest.startswith("businesspartner."):
            return [ChangedRecord("customer", subject, subject)]
        return []
    return []


class Feeds:
    """The event consumer and one catch-up loop per system (run with ``tg.start``)."""

    def __init__(
        self,
        model: ReadModel,
        systems: Systems,
        quota: Quota,
        policy: ReadModelPolicy,
        *,
        store_events: bool = True,
        purpose: str = "catch_up",
        priority: Priority = Priority.SYNC,
    ) -> None:
        self.model = model
        #: the quota share and mailbox priority this instance's reads spend
        self.purpose = purpose
        self.priority = priority
        #: shares whose free tokens it may take first (the catch-up borrows what the
        #: interactive share leaves unused; reconciliation borrows nothing)
        self.borrow: tuple[str, ...] = ("interactive",) if purpose == "catch_up" else ()
        self.systems = systems
        self.quota = quota
        self.policy = policy
        self.store_events = store_events
        self.feeds = system_feeds()
        #: called inside the unit that applies a batch of events (flows they start)
        self.on_events: OnEvents | None = None
        #: called after changes were applied (flows that need the new state)
        self.on_applied: OnApplied | None = None
        self._nudged = {system: anyio.Event() for system in self.feeds}
        self._events_waiting = anyio.Event()

    # ------------------------------------------------------------ running

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:
            for system in self.feeds:
                tg.start_soon(self._catch_up_loop, system, name=f"catch-up {system}")
            if self.store_events:
                tg.start_soon(self._consume_events, name="read-model events")
            task_status.started()

    def nudge(self, system: System) -> None:
        """Ask for a catch-up pass of ``system`` soon (a gap is suspected)."""
        self._nudged[system].set()

    def events_arrived(self) -> None:
        """Wake the consumer (the webhook receiver just stored an event)."""
        self._events_waiting.set()

    async def _catch_up_loop(self, system: System) -> None:
        interval, min_gap = self.policy.schedule(system)
        while True:
            began = anyio.current_time()
            try:
                with working_for("catch-up"):
                    await self.catch_up(system)
            except Exception:  # the loop outlives any one pass
                log.exception("catch-up of %s failed", system)
            # the next pass: at the interval, or sooner when nudged (never closer than
            # min_gap, so a storm of nudges costs one pass per gap)
            await anyio.sleep(max(0.0, began + min_gap - anyio.current_time()))
            with anyio.move_on_after(max(0.0, began + interval - anyio.current_time())):
                await self._nudged[system].wait()
            self._nudged[system] = anyio.Event()

    async def catch_up(self, system: System, progress: Progress | None = None) -> int:
        """Read every feed of ``system`` to its end; returns the records applied.

        ``progress(system, feed, records, done)`` is called after each committed page
        (``crosswalk sync`` draws its bar from it)."""
        applied = 0
        for feed in self.feeds[system]:
            state = self.model.feeds[(system, feed)]
            started = time.time()
            state.last_pass_at = started
            try:
                for _ in range(MAX_PAGES_PER_PASS):
                    page: ChangePage = await self._ask(
                        system, GetChanges(feed, state.cursor, self.policy.page_size)
                    )
                    changes, cover = await self._resolve(system, page.records, started)
                    complete = state.complete_at if page.more else started
                    done = await self.model.apply(
                        changes,
                        source=Source.CATCH_UP,
                        cover=cover,
                        feed=(system, feed, page.cursor, complete),
                    )
                    applied += len(done)
                    if self.on_applied is not None and done:
                        await self.on_applied(system, done)
                    if progress is not None:
                        progress(system, feed, len(page.records), not page.more)
                    if not page.more:
                        break
            except (CrosswalkSystemError, TimeoutError) as exc:
                state.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("catch-up of %s/%s stopped: %s", system, feed, exc)
                return applied
            state.last_error = None
            state.passes += 1
        return applied

    # ------------------------------------------------------------ events

    async def _consume_events(self) -> None:
        while True:
            # a fresh event before the read: an arrival during the read wakes the wait
            # below instead of being lost (the poll only covers other processes' events)
            self._events_waiting = anyio.Event()
            try:
                events = await self.model.store.unapplied_events(limit=EVENT_BATCH)
            except Exception:
                log.exception("read-model events: the inbox could not be read")
                events = []
            if not events:
                with anyio.move_on_after(EVENT_POLL):
                    await self._events_waiting.wait()
                continue
            with working_for("events"):
                await self.apply_events(events)

    async def apply_events(self, events: Sequence[InboxEvent]) -> int:
        """Read back what ``events`` name and apply it, marking them applied."""
        known = {str(s): s for s in System}
        by_system: dict[System, list[InboxEvent]] = {}
        unknown: list[tuple[str, str]] = []
        for event in events:
            system = known.get(event.system)
            if system is None:
                unknown.append((event.system, event.event_id))
            else:
                by_system.setdefault(system, []).append(event)
        applied = 0
        for system, batch in by_system.items():
            records = [r for e in batch for r in records_named_by(e)]
            started = time.time()
            marks = [(e.system, e.event_id) for e in batch]
            try:
                changes, cover = await self._resolve(system, records, started)
            except (CrosswalkSystemError, TimeoutError) as exc:
                # the system cannot be read now: the events' changes stay in its change
                # feed, so hand them to the catch-up rather than hold the inbox up
                log.warning("events of %s not read back (%s): catch-up will", system, exc)
                self.nudge(system)
                changes, cover = [], []
            hook = self.on_events
            within = None if hook is None else partial(hook, system=system, events=batch)
            done = await self.model.apply(
                changes, source=Source.EVENTS, cover=cover, events=marks, within=within
            )
            applied += len(done)
            if self.on_applied is not None:
                await self.on_applied(system, done)
        # events of unknown systems are never read back: mark them so they do not return
        if unknown:
            await self.model.apply([], source=Source.EVENTS, events=unknown)
        return applied

    # ------------------------------------------------------------ reading back

    async def _ask(self, system: System, message: Any) -> Any:
        if not await self.quota.take(system, self.purpose, within=ASK_TIMEOUT, borrow=self.borrow):
            raise TimeoutError(f"{system}: no {self.purpose} quota free within {ASK_TIMEOUT:g} s")
        return await self.systems[system].ask(message, priority=self.priority, timeout=ASK_TIMEOUT)

    async def _resolve(
        self, system: System, records: Iterable[ChangedRecord], started: float
    ) -> tuple[list[Change], list[tuple[System, Kind, str, float]]]:
        """Changes for ``records``: those with a state as they are, deletions for known
        records, and a read-back of the customer slices the rest belong to."""
        version = version_at(started)
        changes: list[Change] = []
        cover: list[tuple[System, Kind, str, float]] = []
        slices: dict[Kind, set[str]] = {}
        for record in records:
            try:
                kind = Kind(record.kind)
            except ValueError:
                continue
            if record.deleted:
                entry = self.model.record(system, kind, record.id)
                customer = record.customer or (entry.customer if entry else None)
                if customer is not None:
                    changes.append(Change(system, kind, record.id, customer, None, version, True))
            elif record.value is not None:
                customer = record.customer if record.customer is not None else ""
                changes.append(Change(system, kind, record.id, customer, record.value, version))
            else:
                customer = record.customer
                if customer is None:
                    entry = self.model.record(system, kind, record.id)
                    customer = entry.customer if entry is not None else None
                if customer is None:
                    one = await self._fetch_one(system, kind, record.id, version)
                    if one is not None:
                        changes.append(one)
                    continue
                slices.setdefault(kind, set()).add(customer)
        for kind, customers in slices.items():
            spec = spec_for(system, kind)
            ordered = sorted(customers)
            for start in range(0, len(ordered), 100):
                chunk = tuple(ordered[start : start + 100])
                read_at = time.time()
                answer: Mapping[str, Any] = await self._ask(system, spec.build(chunk))
                for customer in chunk:
                    value = answer.get(customer)
                    if spec.many:
                        values: tuple[Any, ...] = tuple(value or ())
                    else:
                        values = () if value is None else (value,)
                    changes.extend(
                        self.model.slice_changes(
                            system, kind, customer, values, version_at(read_at)
                        )
                    )
                    cover.append((system, kind, customer, read_at))
        return changes, cover

    async def _fetch_one(
        self, system: System, kind: Kind, record_id: str, version: str
    ) -> Change | None:
        """One record whose customer the read model does not know yet."""
        message: Any
        if system is System.CRM and kind is Kind.OPPORTUNITY:
            message = GetOpportunity(record_id)
        elif system is System.ERP and kind is Kind.BILLING_DOCUMENT:
            message = GetBillingDocument(record_id)
        else:
            return None
        try:
            value = await self._ask(system, message)
        except NotFound:
            return None
        return Change.of(value, version)
