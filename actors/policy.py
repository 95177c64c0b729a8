"""The limits one system's actor and connector run with, as plain frozen types.

``gateway.governance.systems`` reads ``policies/systems.toml`` into these; the actor layer
owns them so that it never imports the gateway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from actors.connector import Endpoint
from canonical import System

__all__ = [
    "BoundsPolicy",
    "BreakerPolicy",
    "CachePolicy",
    "RatePolicy",
    "RetryPolicy",
    "SystemPolicy",
    "SystemsPolicy",
]


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """Outbound calls per second, with a burst allowance (a leaky bucket of ``burst``)."""

    per_second: float = 50.0
    burst: int = 50


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    fail_max: int = 5  # consecutive counted failures that open the breaker
    reset_timeout: float = 30.0  # seconds open before trial calls are let through
    success_threshold: int = 1  # trial successes needed to close again
    half_open_calls: int = 1  # trial calls allowed at the same time while half-open


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Full-jitter exponential backoff for reads: wait U(0, min(cap, base * 2**n))."""

    attempts: int = 3  # tries in all, the first included
    base: float = 0.05
    cap: float = 1.0


@dataclass(frozen=True, slots=True)
class CachePolicy:
    size: int = 10_000  # last-known-good entries kept (LRU)
    ttl: float = 300.0  # seconds a last-known-good answer may be served


@dataclass(frozen=True, slots=True)
class BoundsPolicy:
    """How much one answer may hold: past a bound the call fails with LimitExceeded."""

    max_body_bytes: int = 8 * 1024 * 1024  # bytes of one answer body
    max_pages: int = 1000  # pages one paging walk (or one discovery listing) follows
    max_retry_after: float = 60.0  # seconds of a vendor's Retry-After obeyed at most


@dataclass(frozen=True, slots=True)
class SystemPolicy:
    """Everything the actor and connector for one system are configured with."""

    system: System
    base_url: str
    credentials: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    timeout: float = 5.0  # seconds per upstream call
    max_connections: int = 64
    workers: int = 16  # the bulkhead: calls in flight at once
    mailbox: int = 1000  # queued messages before shedding
    ask_timeout: float = 10.0  # deadline for asks that name none
    health_interval: float = 15.0  # seconds between pings; 0 turns pinging off
    rate: RatePolicy = field(default_factory=RatePolicy)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    cache: CachePolicy = field(default_factory=CachePolicy)
    bounds: BoundsPolicy = field(default_factory=BoundsPolicy)

    def endpoint(self) -> Endpoint:
        return Endpoint(
            base_url=self.base_url,
            credentials=self.credentials,
            timeout=self.timeout,
            max_connections=self.max_connections,
            max_body_bytes=self.bounds.max_body_bytes,
            max_pages=self.bounds.max_pages,
            max_retry_after=self.bounds.max_retry_after,
        )


@dataclass(frozen=True, slots=True)
class SystemsPolicy:
    """The four systems' policies, read from ``file``."""

    file: str
    systems: Mapping[System, SystemPolicy]

    def __getitem__(self, system: System) -> SystemPolicy:
        return self.systems[system]

    def endpoints(self) -> dict[System, Endpoint]:
        return {system: policy.endpoint() for system, policy in self.systems.items()}
