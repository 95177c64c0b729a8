"""The CRM sandbox's API limits: a daily request allowance and a short-term token bucket.

Salesforce counts every authenticated REST call against a rolling 24-hour allowance and
reports it on each answer as ``Sforce-Limit-Info: api-usage=N/M``; past it, calls get
403 ``REQUEST_LIMIT_EXCEEDED``. The sandbox keeps that counter (reset by
``/_sandbox/reset``; set ``daily`` low in tests to reach it) and adds a token bucket for
bursts, answered the same way, standing in for the concurrent-request limit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ApiLimits"]


@dataclass(slots=True)
class ApiLimits:
    """Counts calls; ``admit()`` says whether one more may run."""

    daily: int = 100_000
    per_second: float = 200.0
    burst: int = 400
    used: int = 0
    _tokens: float = field(default=0.0, init=False)
    _stamp: float = field(default_factory=time.monotonic, init=False)

    def __post_init__(self) -> None:
        self._tokens = float(self.burst)

    def reset(self) -> None:
        self.used = 0
        self._tokens = float(self.burst)
        self._stamp = time.monotonic()

    def admit(self) -> bool:
        """Count one call; False when the daily allowance or the bucket is spent."""
        if self.used >= self.daily:
            return False
        now = time.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.per_second)
        self._stamp = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        self.used += 1
        return True

    def header(self) -> str:
        return f"api-usage={self.used}/{self.daily}"

    def to_json(self) -> dict[str, Any]:
        """``GET /limits``: the allowances, as Salesforce names them."""
        return {
            "DailyApiRequests": {"Max": self.daily, "Remaining": max(self.daily - self.used, 0)},
            "ConcurrentPerOrgLongTxn": {"Max": 25, "Remaining": 25},
        }
