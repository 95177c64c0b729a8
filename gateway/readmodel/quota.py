"""Each system's rate split by purpose (``[quota]`` in ``policies/readmodel.toml``).

The system's actor keeps its own limiter at the full policy rate (``systems.toml``): the
vendor never sees more than that. These limiters divide it, so the read path can never
spend what the feeds and the writes need: interactive refreshes take only what is free
*now* (a read answers from the read model rather than wait), the feeds wait their turn.
"""

from __future__ import annotations

from collections.abc import Mapping

import anyio
from aiolimiter import AsyncLimiter

from canonical import System
from gateway.governance.readmodel import QuotaShares

__all__ = ["PURPOSES", "Quota"]

PURPOSES = ("interactive", "catch_up", "reconcile")


class Quota:
    def __init__(self, rates: Mapping[System, float], shares: QuotaShares) -> None:
        self.rates = dict(rates)
        self.shares = shares
        #: this replica's part of every system's quota (``gateway.cluster``); 1 alone
        self.replica_share = 1.0
        self._limiters: dict[tuple[System, str], AsyncLimiter] = {}
        self.spent: dict[tuple[System, str], int] = {}
        self.refused: dict[tuple[System, str], int] = {}
        self._build()

    def _build(self) -> None:
        limiters = {}
        for system in self.rates:
            for purpose in PURPOSES:
                per_second = self.rate(system, purpose)
                if per_second <= 0:
                    continue
                # a bucket of one second's share, refilled continuously
                limiters[(system, purpose)] = AsyncLimiter(max(per_second, 1.0), 1.0)
        self._limiters = limiters

    def set_replica_share(self, share: float) -> None:
        """Divide every purpose's rate by the replicas sharing the quota (0: none at all;
        the actors' own limiters hold the total, these keep the purposes' proportions)."""
        if share != self.replica_share:
            self.replica_share = share
            self._build()

    def rate(self, system: System, purpose: str) -> float:
        share = float(getattr(self.shares, purpose)) * self.replica_share
        return self.rates.get(system, 0.0) * share

    async def try_take(self, system: System, purpose: str = "interactive") -> bool:
        """Take one call's token if one is free now; never waits."""
        limiter = self._limiters.get((system, purpose))
        if limiter is None or not limiter.has_capacity():
            self.refused[(system, purpose)] = self.refused.get((system, purpose), 0) + 1
            return False
        await limiter.acquire()  # has_capacity() just said yes: no wait
        self.spent[(system, purpose)] = self.spent.get((system, purpose), 0) + 1
        return True

    async def take(
        self, system: System, purpose: str, *, within: float, borrow: tuple[str, ...] = ()
    ) -> bool:
        """Wait up to ``within`` seconds for a token; False if none came. With ``borrow``,
        a token another share has free right now is taken before waiting for this one's
        (the feeds borrow what interactive reads leave unused; those, when their own
        share is spent, answer from the read model rather than wait)."""
        limiter = self._limiters.get((system, purpose))
        if limiter is None:
            return False
        if borrow and not limiter.has_capacity():
            for other in borrow:
                lender = self._limiters.get((system, other))
                if lender is not None and lender.has_capacity():
                    await lender.acquire()  # free right now: no wait
                    key = (system, f"{purpose}<-{other}")
                    self.spent[key] = self.spent.get(key, 0) + 1
                    return True
        with anyio.move_on_after(max(0.0, within)):
            await limiter.acquire()
            self.spent[(system, purpose)] = self.spent.get((system, purpose), 0) + 1
            return True
        self.refused[(system, purpose)] = self.refused.get((system, purpose), 0) + 1
        return False
