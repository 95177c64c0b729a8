"""A bounded mailbox that hands out the most urgent message first, FIFO within a class.

When the mailbox is full the least urgent message is shed: either the newcomer (when
nothing queued is less urgent than it) or the newest message of the least urgent class.
The caller answers the shed message; the mailbox only says which one it was.

While nothing is queued, an idle getter can be lent out (``lend``): its owner then does a
getter's work elsewhere (the actor runs a handler in the asker's own task) and gives it
back (``give_back``), so lent and waiting getters together never exceed the getters there
are. A lent getter is not woken by ``put``; a queued message is never overtaken by a loan.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import anyio

from actors.messages import Priority

__all__ = ["LoanFailed", "Mailbox", "MailboxClosed"]

T = TypeVar("T")

_CLASSES = tuple(Priority)


class MailboxClosed(Exception):
    """The mailbox was closed: no more messages go in or come out."""


class LoanFailed(Exception):
    """The getter was lent out and its borrower failed (``__cause__``): the getter restarts."""


class Mailbox(Generic[T]):
    """Bounded priority queue for one actor's workers (many getters, many putters)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"A mailbox needs room for at least one message, got {capacity}.")
        self.capacity = capacity
        self._queues: tuple[deque[T], ...] = tuple(deque() for _ in _CLASSES)
        self._size = 0
        # one event per waiting getter, woken in arrival order
        self._getters: deque[anyio.Event] = deque()
        self._closed = False
        # lent getters given back with their borrower's failure, raised in their ``get``
        self._failed_loans: dict[anyio.Event, BaseException] = {}
        #: makes a getter's wake-up event; its actor sets the backend's own class (no
        #: backend lookup per wait)
        self.event_class: Callable[[], anyio.Event] = anyio.Event

    def __len__(self) -> int:
        return self._size

    @property
    def closed(self) -> bool:
        return self._closed

    def depths(self) -> dict[Priority, int]:
        """Queued messages per priority class."""
        return {priority: len(self._queues[priority]) for priority in _CLASSES}

    def put(self, item: T, priority: Priority) -> T | None:
        """Queue ``item``; answer the message shed to make room (maybe ``item``), or None."""
        if self._closed:
            raise MailboxClosed
        shed: T | None = None
        if self._size >= self.capacity:
            lowest = self._least_urgent_class()
            if lowest <= priority:
                return item  # nothing queued is less urgent than the newcomer
            # the newest of the least urgent class waited least, so it loses least
            shed = self._queues[lowest].pop()
            self._size -= 1
        self._queues[priority].append(item)
        self._size += 1
        self._wake_one()
        return shed

    async def get(self) -> T:
        """The most urgent message, waiting for one; MailboxClosed once closed."""
        while True:
            if self._size:
                return self._pop()
            if self._closed:
                raise MailboxClosed
            event = self.event_class()
            self._getters.append(event)
            try:
                await event.wait()
            except BaseException:
                if event.is_set():
                    # woken but cancelled before taking the message: pass the wake on
                    self._failed_loans.pop(event, None)
                    self._wake_one()
                elif event in self._getters:  # not there while it is lent out
                    self._getters.remove(event)
                raise
            if self._failed_loans:
                failure = self._failed_loans.pop(event, None)
                if failure is not None:
                    raise LoanFailed from failure

    def get_nowait(self) -> T | None:
        return self._pop() if self._size else None

    def lend(self) -> anyio.Event | None:
        """Take an idle getter out of service if nothing is queued; None if there is none."""
        if self._size or self._closed or not self._getters:
            return None
        return self._getters.pop()  # the most recently idle one

    def give_back(self, getter: anyio.Event, failure: BaseException | None = None) -> None:
        """Return a lent getter; with ``failure`` its ``get`` raises ``LoanFailed`` from it."""
        if failure is not None:
            self._failed_loans[getter] = failure
            getter.set()
        elif self._size or self._closed:
            getter.set()  # work (or the close) arrived while it was lent: let it see it
        else:
            self._getters.append(getter)

    def close(self) -> list[T]:
        """Refuse new messages, wake every getter, and answer what was still queued."""
        self._closed = True
        left: list[T] = []
        for queue in self._queues:
            left.extend(queue)
            queue.clear()
        self._size = 0
        while self._getters:
            self._getters.popleft().set()
        return left

    def _pop(self) -> T:
        for queue in self._queues:
            if queue:
                self._size -= 1
                return queue.popleft()
        raise AssertionError("mailbox size and queues disagree")

    def _least_urgent_class(self) -> Priority:
        for priority in reversed(_CLASSES):
            if self._queues[priority]:
                return priority
        raise AssertionError("a full mailbox has no messages")

    def _wake_one(self) -> None:
        if self._getters:
            self._getters.popleft().set()
