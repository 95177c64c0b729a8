"""The bus on NATS JetStream (``nats://host:4222``): replicas on several machines.

Two streams, created (or brought to this configuration) at start, both file-backed and
bounded by age, count and bytes, dropping the oldest:

- ``<PREFIX>_EVENTS`` on ``<prefix>.events.>``: the read model's record changes, one
  subject per system (``crosswalk.events.erp``).
- ``<PREFIX>_OPERATIONS`` on ``<prefix>.operations``: operation status changes.

A subject's first token names its stream. Every message carries the publishing replica
(header ``Crosswalk-Replica``) and a message id (``Nats-Msg-Id``), so a publish retried
after a lost acknowledgement is stored once.

Sending: one task sends the bounded queue in order, up to ``BATCH`` messages pipelined
before their acknowledgements (each within ``timeout``) are awaited; while the server is
unreachable it sends again what was not acknowledged (backing off to 2 s; so a resent
message may land after a later one: no receiver depends on the order, each applies a
version rule or reads the store) and later messages wait, up to ``capacity``, then are
dropped. The first batch sent after drops is followed by a gap marker on each subject
that lost some (``Crosswalk-Gap``); receivers read the store again.

Receiving: each subscription is an ephemeral ordered consumer of its own (every replica
needs every message), from ``since`` or from now. The client reconnects by itself
(forever, every 0.5 s); after a reconnect the subscription makes a new consumer from the
stream sequence after the last one it saw, so an outage loses nothing the stream still
holds; if the stream dropped some of those meanwhile (limits), or the server lost the
stream itself (restarted without its storage: the stream is made again, by whichever
side needs it first), it yields a ``Gap``.

Start-up fails with ``BusError`` if the server cannot be reached within ``timeout``
(a replica that silently never joined would drift); later outages are survived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
import nats
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)

from gateway.bus.interface import (
    DEFAULT_CAPACITY,
    DEFAULT_DRAIN,
    Bus,
    BusError,
    Gap,
    Message,
    Subscription,
    check_subject,
)

__all__ = ["STREAMS", "NatsBus"]

log = logging.getLogger(__name__)

#: the streams (by the first token of their subjects)
STREAMS = ("events", "operations")
REPLICA_HEADER = "Crosswalk-Replica"
GAP_HEADER = "Crosswalk-Gap"
#: the longest back-off between failed sends
MAX_BACKOFF = 2.0
#: messages sent before their acknowledgements are awaited
BATCH = 512
#: messages the client holds for a subscription before the pump takes them (past it the
#: ordered consumer starts again from the first one lost)
CLIENT_PENDING = 65_536
#: bytes kept free in a message for its headers
HEADROOM = 512


class NatsBus(Bus):
    _send: MemoryObjectSendStream[tuple[str, bytes]]
    _queue: MemoryObjectReceiveStream[tuple[str, bytes]]
    _sent: anyio.Event
    _reconnected: anyio.Event

    def __init__(
        self,
        url: str,
        *,
        replica: str | None = None,
        prefix: str = "crosswalk",
        capacity: int = DEFAULT_CAPACITY,
        max_age: float = 3600.0,
        max_msgs: int = 1_000_000,
        max_bytes: int = 1 << 30,
        timeout: float = 5.0,
        drain: float = DEFAULT_DRAIN,
    ) -> None:
        super().__init__(replica=replica, capacity=capacity)
        check_subject(prefix)
        self._url = url
        self.prefix = prefix
        self.max_age, self.max_msgs, self.max_bytes = max_age, max_msgs, max_bytes
        self.timeout = timeout
        self.drain = drain
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._closing = False
        self._pending = 0
        self._lost: set[str] = set()
        self._sequence = 0
        self._tg: anyio.abc.TaskGroup | None = None

    @property
    def url(self) -> str:
        return self._url

    @property
    def queued(self) -> int:
        return self._pending

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    def stream_name(self, subject: str) -> str:
        """The stream holding ``subject`` (relative)."""
        first = subject.split(".", 1)[0]
        if first not in STREAMS:
            raise ValueError(f"no stream for bus subject {subject!r}: one of {STREAMS}")
        return f"{self.prefix}_{first}".upper().replace("-", "_")

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        self._sent = anyio.Event()
        self._reconnected = anyio.Event()
        try:
            with anyio.fail_after(self.timeout):
                self._nc = await nats.connect(
                    self._url,
                    name=f"crosswalk {self.replica}",
                    connect_timeout=max(1, int(self.timeout)),
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                )
                self._js = self._nc.jetstream(timeout=self.timeout)
                for first in STREAMS:
                    await self._ensure_stream(first)
        except Exception as exc:
            await self._close_connection()
            why = f"no answer within {self.timeout:g} s" if isinstance(exc, TimeoutError) else exc
            raise BusError(f"cannot reach the bus at {self._url}: {why!s}") from exc
        self._send, self._queue = anyio.create_memory_object_stream[tuple[str, bytes]](
            self.capacity
        )
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._sender)

    async def close(self) -> None:
        try:
            with anyio.move_on_after(self.drain, shield=True):
                await self.flushed(within=self.drain)
        except TimeoutError:
            pass
        if self._pending:
            log.warning("bus closing with %d messages not sent", self._pending)
        tg, self._tg = self._tg, None
        self._closing = True
        self._send.close()
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
        await self._close_connection()

    async def _close_connection(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            with anyio.move_on_after(self.drain, shield=True):
                await nc.close()

    async def _stream_info(self, first: str) -> StreamInfo:
        """The stream's state, made again first if the server lost it."""
        assert self._js is not None
        try:
            return await self._js.stream_info(self.stream_name(first))
        except nats.js.errors.NotFoundError:
            await self._ensure_stream(first)
            return await self._js.stream_info(self.stream_name(first))

    async def _ensure_stream(self, first: str) -> None:
        assert self._js is not None
        config = StreamConfig(
            name=self.stream_name(first),
            subjects=[f"{self.prefix}.{first}", f"{self.prefix}.{first}.>"],
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=self.max_age,
            max_msgs=self.max_msgs,
            max_bytes=self.max_bytes,
            duplicate_window=120.0,
        )
        try:
            await self._js.stream_info(config.name or "")
        except nats.js.errors.NotFoundError:
            await self._js.add_stream(config)
        else:
            await self._js.update_stream(config)

    async def _on_error(self, exc: Exception) -> None:
        log.debug("bus: %r", exc)

    async def _on_disconnected(self) -> None:
        if not self._closing:
            log.warning("bus: disconnected from %s; reconnecting", self._url)

    async def _on_reconnected(self) -> None:
        log.info("bus: reconnected to %s", self._url)
        self._reconnected.set()
        self._reconnected = anyio.Event()

    # ------------------------------------------------------------ sending

    def publish(self, subject: str, data: bytes) -> None:
        check_subject(subject)
        try:
            self._send.send_nowait((subject, data))
        except anyio.WouldBlock:
            self.dropped += 1
            self._lost.add(subject)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.dropped += 1
        else:
            self._pending += 1

    async def flushed(self, *, within: float) -> None:
        with anyio.fail_after(within):
            while self._pending > 0:
                await self._sent.wait()

    async def _sender(self) -> None:
        with self._queue:
            async for first in self._queue:
                batch = [first]
                while len(batch) < BATCH:
                    try:
                        batch.append(self._queue.receive_nowait())
                    except anyio.WouldBlock:
                        break
                await self._deliver([(subject, data, {}) for subject, data in batch])
                self._pending -= len(batch)
                self.published += len(batch)
                if self._lost:
                    gaps = [(subject, b"", {GAP_HEADER: "1"}) for subject in self._lost]
                    self._lost.clear()
                    await self._deliver(gaps)
                self._sent.set()
                self._sent = anyio.Event()

    async def _deliver(self, items: list[tuple[str, bytes, dict[str, str]]]) -> None:
        """Publish ``items`` pipelined, until the stream acknowledged each (through
        outages: what was not acknowledged is sent again, its message id keeping it
        stored once)."""
        assert self._nc is not None
        assert self._js is not None
        waiting: list[tuple[str, bytes, dict[str, str]]] = []
        for subject, data, headers in items:
            self._sequence += 1
            if len(data) + HEADROOM > self._nc.max_payload:
                log.error("bus: a message of %d bytes on %s is over the limit", len(data), subject)
                self.dropped += 1
                self._lost.add(subject)  # the receivers read the store instead
                continue
            headers = {
                **headers,
                REPLICA_HEADER: self.replica,
                "Nats-Msg-Id": f"{self.replica}-{self._sequence}",
            }
            waiting.append((f"{self.prefix}.{subject}", data, headers))
        backoff = 0.1
        failing = False
        while waiting:
            acks: list[asyncio.Future[Any]] = []
            try:
                with anyio.fail_after(self.timeout):
                    for subject, data, headers in waiting:
                        acks.append(await self._js.publish_async(subject, data, headers=headers))
                    for ack in acks:
                        await ack
            except Exception as exc:  # an outage: send again what was not acknowledged
                if not failing:
                    log.warning("bus: cannot publish (%r); retrying", exc)
                    failing = True
                if isinstance(exc, nats.js.errors.NoStreamResponseError):
                    with contextlib.suppress(Exception):  # the server lost the streams
                        for first in STREAMS:
                            await self._stream_info(first)
                waiting = [
                    item
                    for i, item in enumerate(waiting)
                    if i >= len(acks) or not _acknowledged(acks[i])
                ]
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            waiting = []
        if failing:
            log.info("bus: publishing again")

    # ------------------------------------------------------------ receiving

    @asynccontextmanager
    async def subscribe(
        self, subject: str, *, since: float | None = None
    ) -> AsyncIterator[AsyncIterator[Message | Gap]]:
        send, receive = anyio.create_memory_object_stream[Message | Gap](self.capacity)
        sub = Subscription(subject, send, receive, self)
        async with anyio.create_task_group() as tg:
            await tg.start(self._pump, sub, since)
            try:
                with receive:
                    yield self._count(sub.items())
            finally:
                tg.cancel_scope.cancel()

    async def _count(self, items: AsyncIterator[Message | Gap]) -> AsyncIterator[Message | Gap]:
        async for item in items:
            self.received += 1
            yield item

    async def _pump(
        self,
        sub: Subscription,
        since: float | None,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Feed ``sub`` from an ordered consumer; a new consumer after each reconnect."""
        stream = self.stream_name(sub.pattern)
        full = f"{self.prefix}.{sub.pattern}"
        cut = len(self.prefix) + 1
        last: int | None = None  # the last stream sequence seen
        created: datetime | None = None  # when the stream was made (a new one: lost)
        started = False
        backoff = 0.1
        with sub.send:
            while True:
                reconnected = self._reconnected
                assert self._js is not None
                config = ConsumerConfig(inactive_threshold=30.0)
                try:
                    with anyio.fail_after(self.timeout):
                        info = await self._stream_info(sub.pattern.split(".")[0])
                        state = info.state
                        if last is not None:
                            if info.created != created or state.last_seq < last:
                                sub.offer(Gap(sub.pattern))  # made anew: its server lost it
                                last = 0
                            elif state.first_seq > last + 1:  # dropped what we had not seen
                                sub.offer(Gap(sub.pattern))
                        elif since is None:
                            last = state.last_seq  # from now: what follows, exactly
                        if last is not None:
                            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
                            config.opt_start_seq = last + 1
                        else:
                            config.deliver_policy = DeliverPolicy.BY_START_TIME
                            config.opt_start_time = datetime.fromtimestamp(since or 0.0, UTC)
                        js_sub = await self._js.subscribe(
                            full,
                            stream=stream,
                            ordered_consumer=True,
                            config=config,
                            pending_msgs_limit=CLIENT_PENDING,
                        )
                        created = info.created
                        # the client keeps this config to make the consumer again after a
                        # gap (by sequence); a start time left in it would be rejected
                        config.opt_start_time = None
                except Exception as exc:
                    if not started:
                        raise BusError(f"cannot subscribe to {full}: {exc!r}") from exc
                    log.warning("bus: cannot subscribe to %s (%r); retrying", full, exc)
                    await anyio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                    continue
                backoff = 0.1
                if not started:
                    started = True
                    task_status.started()
                try:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(_cancel_on, reconnected, tg.cancel_scope)
                        async for msg in js_sub.messages:
                            last = msg.metadata.sequence.stream
                            headers: dict[str, Any] = msg.headers or {}
                            if headers.get(REPLICA_HEADER) == self.replica:
                                continue
                            relative = msg.subject[cut:]
                            if headers.get(GAP_HEADER):
                                sub.offer(Gap(relative))
                            else:
                                sub.offer(
                                    Message(relative, msg.data, headers.get(REPLICA_HEADER, ""))
                                )
                finally:
                    with anyio.move_on_after(1.0, shield=True):
                        try:
                            await js_sub.unsubscribe()
                        except Exception as exc:  # the connection may be down: nothing held
                            log.debug("bus: unsubscribe from %s: %r", full, exc)


def _acknowledged(ack: asyncio.Future[Any]) -> bool:
    """Whether the stream stored it; an unanswered publish is given up (cancelled)."""
    if not ack.done():
        ack.cancel()
        return False
    return not ack.cancelled() and ack.exception() is None


async def _cancel_on(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
