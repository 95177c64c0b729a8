"""Write-path settings from ``policies/outbox.toml``: idempotency expiry and delivery limits.

The file is optional; without it the defaults below apply. Every key is checked and
unknown keys are refused (``PolicyError(file, key, reason)``)::

    [idempotency]
    ttl_hours = 24            # how long an Idempotency-Key is remembered (IETF draft)

    [dispatcher]
    workers = 64              # deliveries in flight at once, across all customers
    lease_seconds = 30.0      # a leased message returns to the queue this long after its
                              # holder died; must exceed delivery_timeout
    delivery_timeout = 10.0   # deadline of one delivery (the actor ask)
    max_attempts = 8          # failed deliveries before a message becomes a dead letter
    backoff_base = 0.5        # full-jitter backoff: wait U(0, min(cap, base * 2**n))
    backoff_cap = 30.0
    defer_seconds = 1.0       # wait while a breaker is open or the system throttles
    poll_interval = 0.5       # fallback poll when no in-process wake-up arrives
    drain_seconds = 10.0      # on shutdown, how long in-flight deliveries may finish
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from gateway.governance._toml import read_policy

__all__ = ["DispatchPolicy", "OutboxPolicy", "load_outbox_policy"]


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    """How the dispatcher delivers outbox messages (see the module docstring)."""

    workers: int = 64
    lease_seconds: float = 30.0
    delivery_timeout: float = 10.0
    max_attempts: int = 8
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    defer_seconds: float = 1.0
    poll_interval: float = 0.5
    drain_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.lease_seconds <= self.delivery_timeout:
            raise ValueError(
                f"lease_seconds ({self.lease_seconds}) must exceed delivery_timeout "
                f"({self.delivery_timeout}), or a slow delivery loses its lease mid-call"
            )


@dataclass(frozen=True, slots=True)
class OutboxPolicy:
    idempotency_ttl: timedelta = timedelta(hours=24)
    dispatcher: DispatchPolicy = field(default_factory=DispatchPolicy)


_DISPATCH_KEYS: dict[str, type[int] | type[float]] = {
    "workers": int,
    "lease_seconds": float,
    "delivery_timeout": float,
    "max_attempts": int,
    "backoff_base": float,
    "backoff_cap": float,
    "defer_seconds": float,
    "poll_interval": float,
    "drain_seconds": float,
}


def load_outbox_policy(path: Path | str) -> OutboxPolicy:
    """Read ``path`` (a missing file means the defaults); raise PolicyError on a bad value."""
    data = read_policy(path, if_missing=None)
    data.only({"idempotency", "dispatcher"})
    idempotency = data.table("idempotency", required=False)
    idempotency.only({"ttl_hours"})
    ttl = idempotency.number("ttl_hours", default=24.0)
    dispatch = data.table("dispatcher", required=False)
    dispatch.only(_DISPATCH_KEYS)
    values: dict[str, Any] = {
        key: dispatch.integer(key, minimum=1) if kind is int else dispatch.number(key)
        for key, kind in _DISPATCH_KEYS.items()
        if key in dispatch
    }
    try:
        dispatcher = DispatchPolicy(**values)
    except ValueError as exc:
        raise dispatch.fail("lease_seconds", str(exc)) from None
    return OutboxPolicy(idempotency_ttl=timedelta(hours=ttl), dispatcher=dispatcher)
