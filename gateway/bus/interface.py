"""The bus interface: how gateway replicas tell each other what they committed.

The store holds the truth; the bus only carries news of it between replicas sharing one
store, so each keeps its memory (the read model's index, the operation watchers) current
without polling. What travels is published *after* the store committed it, never before.

- ``publish(subject, data)`` never blocks: the message joins a bounded queue that the
  bus's own task sends in order. Past ``capacity`` the message is dropped and counted, and
  the subject is marked: once sending works again, every replica receives a ``Gap`` on
  it (news was lost; read the store again).
- ``subscribe(subject, since=...)`` yields what *other* replicas published on the subjects
  matching ``subject`` (``*`` one token, ``>`` the rest), from ``since`` (unix time; the
  streams keep recent messages, so a replica that loads its memory from the store first
  and then subscribes from before that load misses nothing). A replica never receives its
  own messages: it already applied them. A ``Gap`` is yielded when the subscriber may have
  missed messages (it fell ``capacity`` behind, the stream dropped what it had not read,
  or a publisher dropped some).
- Closing sends what is queued, within ``drain`` seconds, then ends every subscription.

Subjects are relative (``events.erp``, ``operations``); each backend puts its prefix in
front, so several deployments (or test runs) can share one server.
"""

from __future__ import annotations

import logging
import re
import secrets
import socket
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_DRAIN",
    "Bus",
    "BusError",
    "Gap",
    "Message",
    "Subscription",
    "matches",
    "new_replica_id",
]

log = logging.getLogger(__name__)

#: messages waiting to be sent, and messages a subscriber may fall behind, before loss
DEFAULT_CAPACITY = 10_000
#: seconds closing waits for queued messages to be sent
DEFAULT_DRAIN = 5.0
#: the token a subject's last part may not be: it names every subject (``>``)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


class BusError(RuntimeError):
    """The bus cannot be used (unreachable at start, bad URL, closed)."""


@dataclass(frozen=True, slots=True)
class Message:
    """What another replica published."""

    subject: str  # relative: ``events.erp``
    data: bytes
    origin: str  # the publishing replica's id


@dataclass(frozen=True, slots=True)
class Gap:
    """News on ``subject`` may have been lost: read the store again."""

    subject: str


def new_replica_id() -> str:
    """A replica id unique across hosts and restarts (``host-pid-random``)."""
    import os

    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def matches(pattern: str, subject: str) -> bool:
    """Whether ``subject`` matches ``pattern`` (NATS rules: ``*`` one token, ``>`` the rest)."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def check_subject(subject: str) -> str:
    """``subject`` if every token is plain (publishers may not use wildcards)."""
    if not all(_TOKEN.match(token) for token in subject.split(".")):
        raise ValueError(f"bad bus subject {subject!r}: tokens of letters, digits, - and _")
    return subject


@dataclass(slots=True)
class Subscription:
    """One subscriber's bounded queue; a full queue turns into one ``Gap``."""

    pattern: str
    send: MemoryObjectSendStream[Message | Gap]
    receive: MemoryObjectReceiveStream[Message | Gap]
    owner: Bus
    lost: set[str] = field(default_factory=set)

    def offer(self, item: Message | Gap) -> None:
        """Queue ``item`` without blocking; past capacity it becomes a gap (sent when the
        subscriber has read what is queued)."""
        if self.lost:
            self._flush_lost()
        if self.lost:
            self.lost.add(item.subject)
            self.owner.overflowed += 1
            return
        try:
            self.send.send_nowait(item)
        except anyio.WouldBlock:
            self.lost.add(item.subject)
            self.owner.overflowed += 1
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    def _flush_lost(self) -> None:
        while self.lost:
            subject = next(iter(self.lost))
            try:
                self.send.send_nowait(Gap(subject))
            except anyio.WouldBlock:
                return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.lost.clear()
                return
            self.lost.discard(subject)

    async def items(self) -> AsyncIterator[Message | Gap]:
        async for item in self.receive:
            yield item
            if self.lost:
                self._flush_lost()


class Bus(ABC):
    """A bus backend. Use as ``async with open_bus(url) as bus:``."""

    def __init__(self, *, replica: str | None = None, capacity: int = DEFAULT_CAPACITY) -> None:
        #: this replica's id: its messages carry it, and its subscriptions skip them
        self.replica = replica or new_replica_id()
        self.capacity = capacity
        #: messages dropped because the send queue was full (the bus was unreachable)
        self.dropped = 0
        #: messages a subscriber of this replica lost because it fell behind
        self.overflowed = 0
        #: messages sent, and received from other replicas
        self.published = 0
        self.received = 0

    @property
    @abstractmethod
    def url(self) -> str:
        """Where the bus is (``memory://`` for the in-process one)."""

    @property
    def queued(self) -> int:
        """Messages waiting to be sent."""
        return 0

    @property
    def alone(self) -> bool:
        """Whether no other replica can hear this bus (nothing worth publishing)."""
        return False

    @property
    @abstractmethod
    def connected(self) -> bool:
        """Whether messages reach the other replicas right now."""

    @abstractmethod
    async def open(self) -> None:
        """Connect (the streams made or brought to their configuration)."""

    @abstractmethod
    async def close(self) -> None:
        """Send what is queued (within the drain deadline), end subscriptions, disconnect."""

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
    def publish(self, subject: str, data: bytes) -> None:
        """Queue ``data`` for the other replicas; never blocks (see the module doc)."""

    @abstractmethod
    def subscribe(
        self, subject: str, *, since: float | None = None
    ) -> AbstractAsyncContextManager[AsyncIterator[Message | Gap]]:
        """Other replicas' messages on ``subject`` from ``since`` (None: from now)."""

    @abstractmethod
    async def flushed(self, *, within: float) -> None:
        """Wait until everything queued so far is sent; TimeoutError after ``within``."""
