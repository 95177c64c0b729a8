"""The in-process bus: the default when a gateway runs alone.

``memory://`` gives each bus a hub of its own: a single replica has nobody to tell, so
publishing costs a list append and its own subscriptions never yield (a replica skips its
own messages). ``memory://<name>`` shares the hub ``<name>`` among every bus of this
process opened with it: several runtimes in one process (tests) see each other as
replicas on NATS would. The hub keeps the last ``retain`` messages and those of the last
``max_age`` seconds, so ``subscribe(since=...)`` replays like a stream.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from gateway.bus.interface import (
    DEFAULT_CAPACITY,
    Bus,
    Gap,
    Message,
    Subscription,
    check_subject,
    matches,
)

__all__ = ["MemoryBus", "MemoryHub"]


@dataclass(slots=True)
class MemoryHub:
    """The messages and subscribers shared by the buses of one name."""

    retain: int = 10_000
    max_age: float = 3600.0
    log: deque[tuple[float, Message]] = field(default_factory=deque)
    subscribers: list[tuple[str, Subscription]] = field(default_factory=list)
    users: int = 0

    def append(self, message: Message) -> None:
        now = time.time()
        self.log.append((now, message))
        while self.log and (len(self.log) > self.retain or self.log[0][0] < now - self.max_age):
            self.log.popleft()
        for replica, sub in self.subscribers:
            if replica != message.origin and matches(sub.pattern, message.subject):
                sub.offer(message)


_HUBS: dict[str, MemoryHub] = {}


class MemoryBus(Bus):
    def __init__(
        self,
        name: str = "",
        *,
        replica: str | None = None,
        capacity: int = DEFAULT_CAPACITY,
        retain: int = 10_000,
    ) -> None:
        super().__init__(replica=replica, capacity=capacity)
        self.name = name
        self._hub: MemoryHub | None = None
        self._retain = retain

    @property
    def url(self) -> str:
        return f"memory://{self.name}"

    @property
    def alone(self) -> bool:
        return not self.name

    @property
    def connected(self) -> bool:
        return self._hub is not None

    async def open(self) -> None:
        if self.name:
            hub = _HUBS.get(self.name)
            if hub is None:
                hub = _HUBS[self.name] = MemoryHub(retain=self._retain)
        else:
            hub = MemoryHub(retain=0)  # nobody else can subscribe: keep nothing
        hub.users += 1
        self._hub = hub

    async def close(self) -> None:
        hub, self._hub = self._hub, None
        if hub is None:
            return
        hub.users -= 1
        for _, sub in [s for s in hub.subscribers if s[0] == self.replica]:
            sub.send.close()
        if hub.users == 0 and _HUBS.get(self.name) is hub:
            del _HUBS[self.name]

    def publish(self, subject: str, data: bytes) -> None:
        hub = self._hub
        if hub is None:
            self.dropped += 1
            return
        hub.append(Message(check_subject(subject), data, self.replica))
        self.published += 1

    @asynccontextmanager
    async def subscribe(
        self, subject: str, *, since: float | None = None
    ) -> AsyncIterator[AsyncIterator[Message | Gap]]:
        hub = self._hub
        if hub is None:
            raise RuntimeError("subscribe on a bus that is not open")
        send, receive = anyio.create_memory_object_stream[Message | Gap](self.capacity)
        sub = Subscription(subject, send, receive, self)
        if since is not None:
            for at, message in hub.log:
                if (
                    at >= since
                    and message.origin != self.replica
                    and matches(subject, message.subject)
                ):
                    sub.offer(message)
        entry = (self.replica, sub)
        hub.subscribers.append(entry)
        try:
            with send, receive:
                yield self._count(sub.items())
        finally:
            hub.subscribers.remove(entry)

    async def _count(self, items: AsyncIterator[Message | Gap]) -> AsyncIterator[Message | Gap]:
        async for item in items:
            self.received += 1
            yield item

    async def flushed(self, *, within: float) -> None:
        await anyio.lowlevel.checkpoint()
