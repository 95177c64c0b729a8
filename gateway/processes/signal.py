"""Wake the dispatcher as soon as something is enqueued, without polling for it.

``outbox_signal(store)`` is one per store object: the write path calls ``notify()`` after
its transaction commits, the dispatcher ``await``s ``wait(timeout)``. Messages enqueued by
another process are found by the dispatcher's fallback poll.
"""

from __future__ import annotations

import weakref

import anyio

__all__ = ["OutboxSignal", "outbox_signal"]


class OutboxSignal:
    """A level-triggered wake-up: ``notify`` before ``wait`` is not lost."""

    def __init__(self) -> None:
        self._pending = False
        self._event: anyio.Event | None = None

    def notify(self) -> None:
        self._pending = True
        if self._event is not None:
            self._event.set()

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109 - a poll interval, not a deadline
        """Wait until notified or ``timeout`` seconds passed; True if notified."""
        if not self._pending:
            self._event = anyio.Event()
            with anyio.move_on_after(timeout):
                await self._event.wait()
            self._event = None
        notified, self._pending = self._pending, False
        return notified


_SIGNALS: weakref.WeakKeyDictionary[object, OutboxSignal] = weakref.WeakKeyDictionary()


def outbox_signal(store: object) -> OutboxSignal:
    """The signal shared by everything that uses this store object in this process."""
    signal = _SIGNALS.get(store)
    if signal is None:
        signal = _SIGNALS[store] = OutboxSignal()
    return signal
