"""Outgoing webhooks: each sandbox system pushes its events the way its vendor does.

Events are queued in a bounded buffer and delivered by one worker task that the system's
lifespan owns. Each delivery is signed by the vendor's scheme (a ``Signer`` the vendor
module supplies). A failed delivery (connection error, timeout, non-2xx) is retried with
exponential backoff until ``give_up_after`` seconds have passed since the event was
raised, as the vendors do (Stripe retries for days; the sandbox for minutes). When the
buffer is full the event is dropped and counted: a sandbox must never block its API on
a slow receiver. While ``active()`` says no (chaos ``"webhooks": false``), events are
not queued at all, only counted as ``suppressed``: they are never delivered later.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import aiohttp
import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["Signer", "WebhookSender", "WebhookStats", "random_uuid"]

log = logging.getLogger(__name__)

#: signer(body, unix_time) -> headers to send with the body
Signer = Callable[[bytes, int], Mapping[str, str]]


def random_uuid() -> str:
    """``str(uuid.uuid4())`` (an event id) without building a ``UUID`` object, which
    costs several times the random bytes."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(slots=True)
class WebhookStats:
    queued: int = 0
    delivered: int = 0
    attempts: int = 0
    failed: int = 0  # given up after retrying
    dropped: int = 0  # buffer full
    suppressed: int = 0  # raised while webhooks were switched off (chaos)
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class _Event:
    body: bytes
    raised_at: float


@dataclass(slots=True)
class WebhookSender:
    """Delivers signed events to ``url``; run ``await tg.start(sender.run)`` to start."""

    system: str
    url: str | None
    signer: Signer
    give_up_after: float = 300.0
    first_backoff: float = 0.5
    max_backoff: float = 30.0
    buffer: int = 10_000
    #: deliveries in flight at once, so one event in backoff does not hold up the rest
    workers: int = 4
    #: whether events are sent right now; chaos ``"webhooks": false`` turns it off
    active: Callable[[], bool] = lambda: True
    stats: WebhookStats = field(default_factory=WebhookStats)
    _send: MemoryObjectSendStream[_Event] | None = None

    @property
    def enabled(self) -> bool:
        """Whether events go anywhere: without a receiver, ``publish`` drops them, so a
        caller may skip building them."""
        return self.url is not None

    def publish(self, body: bytes) -> None:
        """Queue one event body (already JSON) for delivery; never blocks."""
        if self.url is None or self._send is None:
            return
        if not self.active():
            self.stats.suppressed += 1
            return
        try:
            self._send.send_nowait(_Event(body, time.monotonic()))
            self.stats.queued += 1
        except anyio.WouldBlock:
            self.stats.dropped += 1

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        send, receive = anyio.create_memory_object_stream[_Event](self.buffer)
        self._send = send
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            send,
            receive,
            anyio.create_task_group() as tg,
        ):
            for _ in range(self.workers):
                tg.start_soon(self._deliver_all, session, receive.clone())
            task_status.started()

    async def _deliver_all(
        self, session: aiohttp.ClientSession, receive: MemoryObjectReceiveStream[_Event]
    ) -> None:
        # each worker owns its clone: closing it on the way out (also when cancelled) keeps
        # the stream from warning "Unclosed MemoryObjectReceiveStream" when collected
        with receive:
            async for event in receive:
                await self._deliver(session, event)

    async def _deliver(self, session: aiohttp.ClientSession, event: _Event) -> None:
        assert self.url is not None
        backoff = self.first_backoff
        while True:
            self.stats.attempts += 1
            headers = {"Content-Type": "application/json"}
            headers.update(self.signer(event.body, int(time.time())))
            try:
                async with session.post(self.url, data=event.body, headers=headers) as resp:
                    await resp.read()
                    if 200 <= resp.status < 300:
                        self.stats.delivered += 1
                        return
                    self.stats.last_error = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() - event.raised_at + backoff > self.give_up_after:
                self.stats.failed += 1
                log.warning(
                    "%s webhook to %s given up: %s", self.system, self.url, self.stats.last_error
                )
                return
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)
