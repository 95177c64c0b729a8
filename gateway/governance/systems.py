"""Per-system limits from ``policies/systems.toml``, validated into frozen config.

The file has one table per system (``[systems.erp]``, ``[systems.billing]``,
``[systems.crm]``, ``[systems.support]``); every key is checked and unknown keys are
refused, so a typo stops start-up instead of silently using a default. Any problem raises
``PolicyError(file, key, reason)``, e.g.
``policies/systems.toml: systems.erp.rate.per_second: must be a positive number, got -1``.

Base URLs can be overridden per system by environment variable (``CROSSWALK_ERP_URL``,
``CROSSWALK_BILLING_URL``, ``CROSSWALK_CRM_URL``, ``CROSSWALK_SUPPORT_URL``).

Credentials: each key's value is, first found, the environment variable that
``credentials_env`` names for it, the file's ``credentials``, and only in the sandbox
profile (``gateway.governance.profiles``) the committed demo ``sandbox_credentials``.
In production a missing required credential is an error naming the variable to set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

from actors.policy import (
    BoundsPolicy,
    BreakerPolicy,
    CachePolicy,
    RatePolicy,
    RetryPolicy,
    SystemPolicy,
    SystemsPolicy,
)
from canonical import System
from gateway.governance._toml import PolicyTable, read_policy
from gateway.governance.errors import PolicyError
from gateway.governance.profiles import PROFILES, SANDBOX

__all__ = [
    "ENV_URLS",
    "BoundsPolicy",
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


def load_systems_policy(
    path: Path | str, *, environ: Mapping[str, str] | None = None, profile: str = SANDBOX
) -> SystemsPolicy:
    """Read and validate ``path``; raise PolicyError naming the file, key and reason."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    environ = os.environ if environ is None else environ
    data = read_policy(path, if_missing="copy policies/systems.toml")
    data.only({"systems"})
    tables = data.table("systems").per_member(System)
    systems = {system: _system(system, table, environ, profile) for system, table in tables.items()}
    return SystemsPolicy(file=data.file, systems=MappingProxyType(systems))


_SYSTEM_KEYS = {
    "base_url",
    "credentials",
    "credentials_env",
    "sandbox_credentials",
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
    "bounds",
}


def _credentials(
    system: System, table: PolicyTable, environ: Mapping[str, str], profile: str
) -> dict[str, str]:
    values: dict[str, str] = {}
    if profile == SANDBOX and "sandbox_credentials" in table:
        sandbox = table.table("sandbox_credentials")
        values.update({key: sandbox.string(key) for key in sandbox})
    if "credentials" in table:
        given = table.table("credentials")
        values.update({key: given.string(key) for key in given})
    env_names: dict[str, str] = {}
    if "credentials_env" in table:
        names = table.table("credentials_env")
        env_names = {key: names.string(key) for key in names}
        values.update({key: environ[name] for key, name in env_names.items() if environ.get(name)})
    missing = sorted(REQUIRED_CREDENTIALS[system] - set(values))
    if missing:
        unset = [env_names[key] for key in missing if key in env_names]
        if unset:
            raise table.fail(
                "credentials_env",
                f"no {system.value} {', '.join(missing)}: set the environment variable"
                f"{'s' if len(unset) > 1 else ''} {', '.join(unset)} (the committed "
                "sandbox_credentials are used only by the sandbox profile, crosswalk up)",
            )
        raise table.fail("credentials", f"missing {', '.join(missing)}")
    return values


def _system(
    system: System, table: PolicyTable, environ: Mapping[str, str], profile: str
) -> SystemPolicy:
    table.only(_SYSTEM_KEYS)
    # the environment's URL wins, and then the file's own base_url may be absent
    override = environ.get(ENV_URLS[system])
    if override:
        base_url = _url(table.file, ENV_URLS[system], override)
    else:
        base_url = _url(table.file, table.key("base_url"), table.string("base_url"))
    credentials = _credentials(system, table, environ, profile)
    rate = table.table("rate")
    rate.only({"per_second", "burst"})
    breaker = table.table("breaker")
    breaker.only({"fail_max", "reset_timeout", "success_threshold", "half_open_calls"})
    retry = table.table("retry")
    retry.only({"attempts", "base", "cap"})
    cache = table.table("cache")
    bounds = table.table("bounds", required=False)
    bounds.only({"max_body_bytes", "max_pages", "max_retry_after"})
    defaults = BoundsPolicy()
    cache.only({"size", "ttl"})
    retry_policy = RetryPolicy(
        attempts=retry.integer("attempts", minimum=1),
        base=retry.number("base"),
        cap=retry.number("cap"),
    )
    if retry_policy.cap < retry_policy.base:
        raise retry.fail("cap", f"must be at least retry.base ({retry_policy.base})")
    return SystemPolicy(
        system=system,
        base_url=base_url.rstrip("/"),
        credentials=MappingProxyType(credentials),
        timeout=table.number("timeout"),
        max_connections=table.integer("max_connections", minimum=1),
        workers=table.integer("workers", minimum=1),
        mailbox=table.integer("mailbox", minimum=1),
        ask_timeout=table.number("ask_timeout"),
        health_interval=table.number("health_interval", allow_zero=True),
        rate=RatePolicy(
            per_second=rate.number("per_second"),
            burst=rate.integer("burst", minimum=1),
        ),
        breaker=BreakerPolicy(
            fail_max=breaker.integer("fail_max", minimum=1),
            reset_timeout=breaker.number("reset_timeout"),
            success_threshold=breaker.integer("success_threshold", minimum=1),
            half_open_calls=breaker.integer("half_open_calls", minimum=1),
        ),
        retry=retry_policy,
        cache=CachePolicy(
            size=cache.integer("size", minimum=0),
            ttl=cache.number("ttl"),
        ),
        bounds=BoundsPolicy(
            max_body_bytes=bounds.integer(
                "max_body_bytes", minimum=1024, default=defaults.max_body_bytes
            ),
            max_pages=bounds.integer("max_pages", minimum=1, default=defaults.max_pages),
            max_retry_after=bounds.number("max_retry_after", default=defaults.max_retry_after),
        ),
    )


def _url(file: str, key: str, value: str) -> str:
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.netloc)
    except ValueError:  # an unclosed IPv6 bracket and the like
        ok = False
    if not ok:
        raise PolicyError(
            file, key, f"must be an http(s) URL like http://127.0.0.1:8101, got {value!r}"
        )
    return value
