"""Per-system limits from ``policies/systems.toml``, validated into frozen config.

The file has one table per system (``[systems.erp]``, ``[systems.billing]``,
``[systems.crm]``, ``[systems.support]``); every key is checked and unknown keys are
refused, so a typo stops start-up instead of silently using a default. Any problem raises
``PolicyError(file, key, reason)``, e.g.
``policies/systems.toml: systems.erp.rate.per_second: must be a positive number, got -1``.

Base URLs can be overridden per system by environment variable (``CROSSWALK_ERP_URL``,
``CROSSWALK_BILLING_URL``, ``CROSSWALK_CRM_URL``, ``CROSSWALK_SUPPORT_URL``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from actors.connector import Endpoint
from gateway.canonical import System
from gateway.governance.errors import PolicyError

__all__ = [
    "ENV_URLS",
    "BreakerPolicy",
    "CachePolicy",
    "RatePolicy",
    "RetryPolicy",
    "SystemPolicy",
    "SystemsPolicy",
    "load_systems_policy",
]

ENV_URLS: Mapping[System, str] = MappingProxyType(
    {system: f"CROSSWALK_{system.name}_URL" for system in System}
)

#: the credential keys each connector reads from ``Endpoint.credentials``
REQUIRED_CREDENTIALS: Mapping[System, frozenset[str]] = MappingProxyType(
    {
        System.ERP: frozenset({"username", "password"}),
        System.BILLING: frozenset({"api_key"}),
        System.CRM: frozenset({"access_token"}),
        System.SUPPORT: frozenset({"email", "token"}),
    }
)


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

    def endpoint(self) -> Endpoint:
        return Endpoint(
            base_url=self.base_url,
            credentials=self.credentials,
            timeout=self.timeout,
            max_connections=self.max_connections,
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


def load_systems_policy(
    path: Path | str, *, environ: Mapping[str, str] | None = None
) -> SystemsPolicy:
    """Read and validate ``path``; raise PolicyError naming the file, key and reason."""
    environ = os.environ if environ is None else environ
    file = str(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise PolicyError(file, "", "file not found; copy policies/systems.toml") from None
    except OSError as exc:
        raise PolicyError(file, "", f"cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(file, "", f"not valid TOML: {exc}") from None
    reader = _Reader(file)
    reader.only(data, "", {"systems"})
    tables = reader.table(data, "systems")
    reader.only(tables, "systems", {s.value for s in System})
    systems = {
        system: _system(reader, system, reader.table(tables, f"systems.{system}"), environ)
        for system in System
    }
    return SystemsPolicy(file=file, systems=MappingProxyType(systems))


_SYSTEM_KEYS = {
    "base_url",
    "credentials",
    "timeout",
    "max_connections",
    "workers",
    "mailbox",
    "ask_timeout",
    "health_interval",
    "rate",
    "breaker",
    "retry",
    "cache",
}


def _system(
    reader: _Reader, system: System, table: dict[str, Any], environ: Mapping[str, str]
) -> SystemPolicy:
    at = f"systems.{system}"
    reader.only(table, at, _SYSTEM_KEYS)
    override = environ.get(ENV_URLS[system])
    if override:
        base_url = override
        reader.url(base_url, ENV_URLS[system])
        reader.only(table, at, _SYSTEM_KEYS)  # the file's own base_url may still be absent
    else:
        base_url = reader.string(table, f"{at}.base_url")
        reader.url(base_url, f"{at}.base_url")
    credentials = reader.table(table, f"{at}.credentials")
    missing = REQUIRED_CREDENTIALS[system] - credentials.keys()
    if missing:
        raise PolicyError(reader.file, f"{at}.credentials", f"missing {', '.join(sorted(missing))}")
    for key in credentials:
        reader.string(credentials, f"{at}.credentials.{key}")
    rate = reader.table(table, f"{at}.rate")
    reader.only(rate, f"{at}.rate", {"per_second", "burst"})
    breaker = reader.table(table, f"{at}.breaker")
    reader.only(
        breaker,
        f"{at}.breaker",
        {"fail_max", "reset_timeout", "success_threshold", "half_open_calls"},
    )
    retry = reader.table(table, f"{at}.retry")
    reader.only(retry, f"{at}.retry", {"attempts", "base", "cap"})
    cache = reader.table(table, f"{at}.cache")
    reader.only(cache, f"{at}.cache", {"size", "ttl"})
    retry_policy = RetryPolicy(
        attempts=reader.integer(retry, f"{at}.retry.attempts", minimum=1),
        base=reader.number(retry, f"{at}.retry.base", positive=True),
        cap=reader.number(retry, f"{at}.retry.cap", positive=True),
    )
    if retry_policy.cap < retry_policy.base:
        raise PolicyError(
            reader.file, f"{at}.retry.cap", f"must be at least retry.base ({retry_policy.base})"
        )
    breaker_policy = BreakerPolicy(
        fail_max=reader.integer(breaker, f"{at}.breaker.fail_max", minimum=1),
        reset_timeout=reader.number(breaker, f"{at}.breaker.reset_timeout", positive=True),
        success_threshold=reader.integer(breaker, f"{at}.breaker.success_threshold", minimum=1),
        half_open_calls=reader.integer(breaker, f"{at}.breaker.half_open_calls", minimum=1),
    )
    return SystemPolicy(
        system=system,
        base_url=base_url.rstrip("/"),
        credentials=MappingProxyType(dict(credentials)),
        timeout=reader.number(table, f"{at}.timeout", positive=True),
        max_connections=reader.integer(table, f"{at}.max_connections", minimum=1),
        workers=reader.integer(table, f"{at}.workers", minimum=1),
        mailbox=reader.integer(table, f"{at}.mailbox", minimum=1),
        ask_timeout=reader.number(table, f"{at}.ask_timeout", positive=True),
        health_interval=reader.number(table, f"{at}.health_interval", positive=False),
        rate=RatePolicy(
            per_second=reader.number(rate, f"{at}.rate.per_second", positive=True),
            burst=reader.integer(rate, f"{at}.rate.burst", minimum=1),
        ),
        breaker=breaker_policy,
        retry=retry_policy,
        cache=CachePolicy(
            size=reader.integer(cache, f"{at}.cache.size", minimum=0),
            ttl=reader.number(cache, f"{at}.cache.ttl", positive=True),
        ),
    )


class _Reader:
    """Typed access to TOML values; every complaint names the file and the dotted key."""

    def __init__(self, file: str) -> None:
        self.file = file

    def _fail(self, key: str, reason: str) -> PolicyError:
        return PolicyError(self.file, key, reason)

    def _get(self, table: dict[str, Any], key: str) -> Any:
        name = key.rsplit(".", 1)[-1]
        if name not in table:
            raise self._fail(key, "missing; every system sets it (see policies/systems.toml)")
        return table[name]

    def only(self, table: dict[str, Any], at: str, allowed: set[str]) -> None:
        for name in table:
            if name not in allowed:
                key = f"{at}.{name}" if at else name
                raise self._fail(key, f"unknown key; expected one of {', '.join(sorted(allowed))}")

    def table(self, table: dict[str, Any], key: str) -> dict[str, Any]:
        value = self._get(table, key)
        if not isinstance(value, dict):
            raise self._fail(key, f"must be a table, got {type(value).__name__}")
        return value

    def string(self, table: dict[str, Any], key: str) -> str:
        value = self._get(table, key)
        if not isinstance(value, str) or not value:
            raise self._fail(key, f"must be a non-empty string, got {value!r}")
        return value

    def url(self, value: str, key: str) -> None:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise self._fail(
                key, f"must be an http(s) URL like http://127.0.0.1:8101, got {value!r}"
            )

    def integer(self, table: dict[str, Any], key: str, *, minimum: int) -> int:
        value = self._get(table, key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, f"must be an integer, got {value!r}")
        if value < minimum:
            raise self._fail(key, f"must be at least {minimum}, got {value}")
        return int(value)

    def number(self, table: dict[str, Any], key: str, *, positive: bool) -> float:
        value = self._get(table, key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, f"must be a number, got {value!r}")
        if positive and not value > 0:
            raise self._fail(key, f"must be a positive number, got {value}")
        if not positive and value < 0:
            raise self._fail(key, f"must be zero or more, got {value}")
        return float(value)
