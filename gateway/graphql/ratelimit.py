"""Per-client rate limits: a request rate and a query-cost budget per minute.

Each client (``policies/clients.toml``, ``requests_per_minute`` and ``cost_per_minute``;
JWT clients take their issuer's) owns two token buckets that hold one minute's allowance
and refill continuously. Every request (an HTTP request, or one operation sent over
graphql-transport-ws) takes one request token; every operation then takes its estimated
cost (the figure the query limits compute). A client past either budget is answered
``THROTTLED`` (HTTP 429 with ``Retry-After``) before anything runs, and other clients
are not affected: one portal cannot spend every vendor's quota and starve the widgets.

The buckets live in the process (one gateway: one budget); they are created on first use
and the least recently used are dropped past ``MAX_CLIENTS`` (JWT subjects are open-ended).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from gateway.governance.clients import Client
from gateway.graphql.errors import CodedError, ErrorCode

__all__ = ["MAX_CLIENTS", "OverBudget", "RateLimiter", "throttled_error"]

#: buckets kept at most; the least recently used client's are dropped first
MAX_CLIENTS = 10_000


class OverBudget(Exception):
    """A client is over one of its budgets; ``retry_after`` is in whole seconds."""

    def __init__(self, error: CodedError, retry_after: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


def throttled_error(client: Client, budget: str, per_minute: int, retry_after: int) -> CodedError:
    what = "requests" if budget == "requests" else "query cost"
    return CodedError(
        ErrorCode.THROTTLED,
        f"Client '{client.id}' is over its budget of {per_minute} {what} per minute; "
        f"retry after {retry_after} s, or ask for a larger budget in policies/clients.toml.",
        extensions={
            "client": client.id,
            "budget": budget,
            "limit": per_minute,
            "retryAfter": retry_after,
        },
    )


@dataclass(slots=True)
class _Bucket:
    capacity: float
    tokens: float
    updated: float

    def take(self, amount: float, now: float) -> float:
        """Take ``amount``; return 0.0, or the seconds until it could be taken (nothing
        is taken then)."""
        per_second = self.capacity / 60.0
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * per_second)
        self.updated = now
        if amount <= self.tokens:
            self.tokens -= amount
            return 0.0
        if amount > self.capacity:
            return 60.0  # more than a whole minute's budget: never, say a minute
        return (amount - self.tokens) / per_second


class RateLimiter:
    """The request and cost buckets of every client seen."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()

    def _bucket(self, client: Client, budget: str, per_minute: int) -> _Bucket:
        key = (client.id, budget)
        bucket = self._buckets.get(key)
        if bucket is None or bucket.capacity != per_minute:
            bucket = _Bucket(float(per_minute), float(per_minute), self._clock())
            self._buckets[key] = bucket
            if len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def _take(self, client: Client, budget: str, per_minute: int, amount: float) -> None:
        wait = self._bucket(client, budget, per_minute).take(amount, self._clock())
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise OverBudget(throttled_error(client, budget, per_minute, retry_after), retry_after)

    def request(self, client: Client) -> None:
        """Count one request; raise ``OverBudget`` past the client's request rate."""
        self._take(client, "requests", client.requests_per_minute, 1.0)

    def cost(self, client: Client, cost: int) -> None:
        """Spend an operation's estimated cost; raise ``OverBudget`` past the budget."""
        self._take(client, "cost", client.cost_per_minute, float(max(1, cost)))
