"""Write-path settings from ``policies/outbox.toml``: idempotency expiry and delivery limits.

The file is optional; without it the defaults below apply. Every key is checked and
unknown keys are refused (``PolicyError(file, key, reason)``)::

    [idempotency]
    ttl_hours = 24            # how long an Idempotency-Key is remembered (IETF draft)

    [dispatcher]
    workers = 32              # deliveries in flight at once, across all customers
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

import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from gateway.governance.errors import PolicyError

__all__ = ["DispatchPolicy", "OutboxPolicy", "load_outbox_policy"]


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    """How the dispatcher delivers outbox messages (see the module docstring)."""

    workers: int = 32
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


_DISPATCH_KEYS = {
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
    file = str(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return OutboxPolicy()
    except OSError as exc:
        raise PolicyError(file, "", f"cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(file, "", f"not valid TOML: {exc}") from None
    _only(file, data, "", {"idempotency", "dispatcher"})
    idem = _table(file, data, "idempotency")
    _only(file, idem, "idempotency", {"ttl_hours"})
    ttl = _number(file, idem.get("ttl_hours", 24), "idempotency.ttl_hours", float)
    dispatch = _table(file, data, "dispatcher")
    _only(file, dispatch, "dispatcher", set(_DISPATCH_KEYS))
    values = {
        key: _number(file, dispatch[key], f"dispatcher.{key}", kind)
        for key, kind in _DISPATCH_KEYS.items()
        if key in dispatch
    }
    try:
        dispatcher = DispatchPolicy(**values)
    except ValueError as exc:
        raise PolicyError(file, "dispatcher.lease_seconds", str(exc)) from None
    return OutboxPolicy(idempotency_ttl=timedelta(hours=ttl), dispatcher=dispatcher)


def _only(file: str, table: dict[str, Any], at: str, allowed: set[str]) -> None:
    for name in table:
        if name not in allowed:
            key = f"{at}.{name}" if at else name
            raise PolicyError(
                file, key, f"unknown key; expected one of {', '.join(sorted(allowed))}"
            )


def _table(file: str, data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise PolicyError(file, key, f"must be a table, got {type(value).__name__}")
    return value


def _number(file: str, value: Any, key: str, kind: type[int] | type[float]) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(file, key, f"must be a number, got {value!r}")
    if kind is int and not isinstance(value, int):
        raise PolicyError(file, key, f"must be a whole number, got {value!r}")
    if value <= 0:
        raise PolicyError(file, key, f"must be positive, got {value}")
    return kind(value)
