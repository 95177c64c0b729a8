"""Live replicas in a NATS JetStream key-value bucket, and each replica's share of a quota.

A vendor's quota belongs to the account, not to a process: two replicas that each spend
the policy rate get the account throttled. Each replica therefore spends ``1 / N`` of
every system's rate, ``N`` being the replicas it sees alive, and the shares of the live
replicas never sum above 1:

- every ``heartbeat`` seconds each replica writes its key (``replica id -> N it counted
  last``) into a bucket whose entries the server drops after ``ttl`` seconds, then reads
  the live keys: their number is its new ``N``;
- lowering a share is always safe and happens at once; a share is *raised* (a newcomer's
  first share from 0, or the others' after a replica left) only once every other live
  replica has written an ``N`` at least as large, that is, has counted the same replicas
  and lowered its own share first. A newcomer thus spends nothing until the others have
  made room, however slow their heartbeats;
- a replica that leaves cleanly stops spending, then deletes its key; one that dies is
  dropped by the server after ``ttl``, and only then do the others raise their shares
  (a dead replica's share idles for at most ``ttl + heartbeat``; it is never spent twice);
- a replica that cannot write its key for ``ttl - heartbeat`` seconds may have been counted
  out, so it stops spending until it is back: while NATS is down no replica calls a vendor
  (reads answer from the read model, saying how stale; writes wait in the outbox);
- the actors build limiters for a new share drained, so a shrinking share never bursts.

The trade-off against one token bucket that every replica draws from: no round trip per
vendor call (interactive reads pay nothing extra), at the cost of a dead replica's share
idling until its key expires and a heartbeat or two before a newcomer spends.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

import anyio
import anyio.abc
import nats
from nats.aio.client import Client as NatsClient
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

__all__ = ["Membership", "QuotaShare", "SoleReplica", "sharing_quota"]

log = logging.getLogger(__name__)

BUCKET = "crosswalk_replicas"


class QuotaShare(Protocol):
    """What the runtime needs: the fraction of each quota this replica may spend now."""

    replica_id: str

    @property
    def share(self) -> float: ...

    @property
    def replicas(self) -> int: ...

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = ...) -> None: ...


class SoleReplica:
    """One process, no bus: the whole quota is this replica's."""

    def __init__(self) -> None:
        self.replica_id = "sole"

    @property
    def share(self) -> float:
        return 1.0

    @property
    def replicas(self) -> int:
        return 1

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        await anyio.sleep_forever()


class Membership:
    """This replica's key in the bucket, kept fresh; ``share`` follows the live count.

    ``on_change(share)`` is called from the heartbeat task whenever the share changes,
    before the next heartbeat tells the others about it.
    """

    def __init__(
        self,
        url: str,
        *,
        replica_id: str | None = None,
        bucket: str = BUCKET,
        heartbeat: float = 1.0,
        ttl: float = 5.0,
        on_change: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 2 * heartbeat:
            raise ValueError("ttl must exceed two heartbeats, or live replicas expire")
        self.url = url
        self.replica_id = replica_id or uuid.uuid4().hex[:12]
        self.bucket = bucket
        self.heartbeat = heartbeat
        self.ttl = ttl
        self._on_change = on_change
        self._clock = clock
        self._share = 0.0
        self._replicas = 0
        self._last_ok: float | None = None

    @property
    def share(self) -> float:
        return self._share

    @property
    def replicas(self) -> int:
        return self._replicas

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Heartbeat until cancelled; then stop spending and delete the key (shielded).

        Started at once: until NATS answers, the share stays 0 and connecting is retried.
        """
        task_status.started()
        delay = self.heartbeat
        while True:
            try:
                nc = await nats.connect(
                    self.url,
                    name=f"crosswalk-membership-{self.replica_id}",
                    connect_timeout=2,
                    max_reconnect_attempts=-1,
                    allow_reconnect=True,
                    error_cb=self._nats_error,
                )
            except (OSError, TimeoutError, nats.errors.Error) as exc:
                log.warning("membership: NATS at %s unreachable (%s); retrying", self.url, exc)
                await anyio.sleep(delay)
                delay = min(delay * 2, 10 * self.heartbeat)
                continue
            try:
                await self._serve(nc)
            except (TimeoutError, nats.errors.Error) as exc:
                log.warning("membership: bucket %s unavailable (%s); retrying", self.bucket, exc)
                await anyio.sleep(delay)
            finally:
                with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                    await nc.close()

    async def _nats_error(self, exc: Exception) -> None:
        log.debug("membership: NATS client: %s", exc)

    async def _serve(self, nc: NatsClient) -> None:
        with anyio.fail_after(10):
            kv = await nc.jetstream().create_key_value(
                KeyValueConfig(bucket=self.bucket, ttl=self.ttl, history=1)
            )
        try:
            while True:
                await self._beat(kv)
                await anyio.sleep(self.heartbeat)
        finally:
            self._set(0.0)
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await kv.delete(self.replica_id)

    def _drop_if_counted_out(self) -> None:
        """Spend nothing once our key may have expired (a failed or late heartbeat): the
        others may have counted us out; the share comes back only by their ack."""
        if self._last_ok is not None and self._clock() - self._last_ok >= (
            self.ttl - self.heartbeat
        ):
            self._set(0.0)

    async def _beat(self, kv: KeyValue) -> None:
        self._drop_if_counted_out()  # this beat may come late (a stalled event loop)
        try:
            # a slow round is not a lost key: allow it up to 2 s, within what the ttl leaves
            with anyio.fail_after(min(self.ttl - self.heartbeat, max(2 * self.heartbeat, 2.0))):
                await kv.put(self.replica_id, str(self._replicas).encode())
                self._last_ok = self._clock()
                counted = await self._others(kv)
        except (TimeoutError, nats.errors.Error) as exc:
            self._drop_if_counted_out()
            log.warning("replica heartbeat failed (share now %.3f): %s", self._share, exc)
            return
        self._replicas = len(counted) + 1
        fair = 1.0 / self._replicas
        if all(n >= self._replicas for n in counted.values()):
            self._set(fair)  # everyone else has made room
        else:
            self._set(min(self._share, fair))  # lower at once; raise only when acknowledged

    async def _others(self, kv: KeyValue) -> dict[str, int]:
        """The other live replicas and the count each wrote last."""
        try:
            keys = await kv.keys()
        except NoKeysError:
            return {}
        counted = {}
        for key in keys:
            if key == self.replica_id:
                continue
            try:
                entry = await kv.get(key)
            except KeyNotFoundError:
                continue  # expired or left between the listing and the read
            value = (entry.value or b"0").decode()
            counted[key] = int(value) if value.isdigit() else 0
        return counted

    def _set(self, share: float) -> None:
        if share != self._share:
            log.info("quota share %.3f of %d replica(s)", share, self._replicas)
            self._share = share
            if self._on_change is not None:
                self._on_change(share)


@asynccontextmanager
async def sharing_quota(
    target: tuple[str, str] | None,
    apply: Callable[[float], None],
    *,
    heartbeat: float = 1.0,
    ttl: float = 5.0,
) -> AsyncIterator[QuotaShare]:
    """This replica's share of every quota, applied through ``apply`` while inside.

    ``target`` is the bus's NATS server and subject prefix (the bucket is
    ``<prefix>_replicas``, so deployments sharing a server stay apart). Without one the
    replica is alone: the whole quota, nothing runs. With one,
    the share is 0 until the membership has made room for it, and leaving stops spending
    and says goodbye; enter it outside whatever must finish spending first (the
    dispatcher's drain), so that the key lives until then.
    """
    if target is None:
        yield SoleReplica()
        return
    server, prefix = target
    membership = Membership(
        server, bucket=f"{prefix}_replicas", on_change=apply, heartbeat=heartbeat, ttl=ttl
    )
    apply(0.0)
    async with anyio.create_task_group() as tg:
        await tg.start(membership.run, name="replica membership")
        try:
            yield membership
        finally:
            tg.cancel_scope.cancel()
