"""One system's rate limiter, at the policy rate times this replica's share of it.

A vendor's quota belongs to the account: with several gateway replicas each spends a
share (``gateway.cluster`` decides it, ``Systems.set_rate_share`` in ``actors.fleet``
applies it). The bucket is aiolimiter's leaky bucket; a new share builds a new bucket, and:

- a new bucket starts drained (its first token comes after ``1 / rate``), so a share
  that shrinks never bursts, and one that grows does not add a burst on top of what was
  just spent;
- a caller that got its token from a bucket that has since been replaced takes one from
  the new bucket too: what is spent always follows the current share;
- at share 0 callers wait for a share (within their own deadlines).
"""

from __future__ import annotations

import anyio
from aiolimiter import AsyncLimiter

from actors.policy import RatePolicy

__all__ = ["SharedRate"]


class SharedRate:
    def __init__(self, rate: RatePolicy, share: float = 1.0) -> None:
        self._rate = rate
        self._changed = anyio.Event()
        self.share = share
        # the first bucket starts full, as a process's first always did
        self._bucket = self._build(share)
        #: a bucket not yet drained (drained by its first taker: draining a new bucket
        #: never waits, but it is a coroutine)
        self._fresh: AsyncLimiter | None = None

    @property
    def per_second(self) -> float:
        return self._rate.per_second * self.share

    def _build(self, share: float) -> AsyncLimiter | None:
        if share <= 0:
            return None
        per_second = self._rate.per_second * share
        size = max(1.0, self._rate.burst * share)
        return AsyncLimiter(size, size / per_second)

    def set_share(self, share: float) -> None:
        """Spend ``share`` (0 to 1) of the policy rate from now on."""
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be between 0 and 1, got {share}")
        if share == self.share:
            return
        self.share = share
        self._bucket = self._fresh = self._build(share)
        self._changed.set()
        self._changed = anyio.Event()

    def has_capacity(self) -> bool:
        bucket = self._bucket
        return bucket is not None and bucket is not self._fresh and bucket.has_capacity()

    async def acquire(self) -> None:
        """Take one token from the current bucket; wait while the share is 0."""
        while True:
            bucket = self._bucket
            if bucket is None:
                await self._changed.wait()
                continue
            if bucket is self._fresh:
                self._fresh = None
                await bucket.acquire(bucket.max_rate)  # drain it: no wait, it is new
            await bucket.acquire()
            if bucket is self._bucket:
                return
