"""What travels through an actor: the ``Envelope`` around a message, and the ``Reply`` an
asker waits on while a worker handles it (``actors._actor``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio

from actors.context import CallContext
from actors.messages import Message, Priority

__all__ = ["Envelope", "Reply"]

_MISSING = object()


class Reply:
    """Where a worker puts the answer to one ask; the asker waits on it."""

    # slots: one of these is made per ask, on the hot path
    __slots__ = ("_error", "_event", "_value", "abandoned", "expired", "started")

    def __init__(self, event: anyio.Event | None = None) -> None:
        self._event = anyio.Event() if event is None else event
        self._value: Any = _MISSING
        self._error: BaseException | None = None
        #: the asker stopped waiting (deadline or cancellation); a queued message is skipped
        self.abandoned = False
        #: a worker took the message out of the mailbox
        self.started = False
        #: the asker's deadline passed before an answer came (see ``expire``)
        self.expired = False

    @property
    def done(self) -> bool:
        return self._event.is_set()

    def set_result(self, value: Any) -> None:
        if not self._event.is_set():
            self._value = value
            self._event.set()

    def set_error(self, error: BaseException) -> None:
        if not self._event.is_set():
            self._error = error
            self._event.set()

    def expire(self) -> None:
        """The ask's deadline passed unanswered: wake the asker, skip the queued message."""
        if not self._event.is_set():
            self.expired = True
            self.abandoned = True
            self._event.set()

    async def wait(self) -> Any:
        await self._event.wait()
        if self._error is not None:
            raise self._error
        return self._value


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message on its way through an actor.

    ``reply_to`` is None for ``tell``, and for an ask run in the asker's own task (the fast
    path), which answers by returning.
    """

    message: Message
    reply_to: Reply | None
    priority: Priority
    deadline: float  # on the anyio.current_time() clock
    #: the asker's call context (correlation, trace), carried to the handling task
    call: CallContext | None = None
