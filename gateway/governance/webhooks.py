"""Webhook secrets and signature schemes from ``policies/webhooks.toml``.

One table per system (``[webhooks.erp]`` ...), each with ``scheme`` (bearer, stripe or
zendesk), the secret (at least 8 characters) and optional ``tolerance`` (seconds a signed
timestamp may be from now, default 300). The secret is, first found: the environment
variable ``secret_env`` names, the file's ``secret``, and only in the sandbox profile
(``gateway.governance.profiles``) the committed demo ``sandbox_secret``; in production a
missing secret is an error naming the variable to set. Any problem raises
``PolicyError(file, key, reason)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from canonical import System
from gateway.governance._toml import PolicyTable, read_policy
from gateway.governance.profiles import PROFILES, SANDBOX

__all__ = ["SCHEMES", "WebhookPolicy", "WebhooksPolicy", "load_webhooks_policy"]

SCHEMES = frozenset({"bearer", "stripe", "zendesk"})
_KEYS = {"scheme", "secret", "secret_env", "sandbox_secret", "tolerance"}


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    system: System
    scheme: str
    secret: str
    tolerance: float = 300.0


@dataclass(frozen=True, slots=True)
class WebhooksPolicy:
    file: str
    systems: Mapping[System, WebhookPolicy]

    def __getitem__(self, system: System) -> WebhookPolicy:
        return self.systems[system]


def load_webhooks_policy(
    path: Path | str, *, environ: Mapping[str, str] | None = None, profile: str = SANDBOX
) -> WebhooksPolicy:
    """Read and validate ``path``; raise PolicyError naming the file, key and reason."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    environ = os.environ if environ is None else environ
    data = read_policy(path, if_missing="copy policies/webhooks.toml")
    data.only({"webhooks"})
    tables = data.table("webhooks").per_member(System)
    systems = {
        system: _webhook(system, table, environ, profile) for system, table in tables.items()
    }
    return WebhooksPolicy(data.file, MappingProxyType(systems))


def _webhook(
    system: System, table: PolicyTable, environ: Mapping[str, str], profile: str
) -> WebhookPolicy:
    table.only(_KEYS)
    scheme = table.choice("scheme", sorted(SCHEMES))
    # secret_env, when set in the environment, wins over the file's secret
    env_name = table.string("secret_env") if "secret_env" in table else None
    key = "secret"
    if env_name and environ.get(env_name):
        secret = environ[env_name]
        key = "secret_env"
    elif "secret" in table:
        secret = table.string("secret")
    elif profile == SANDBOX and "sandbox_secret" in table:
        secret = table.string("sandbox_secret")
        key = "sandbox_secret"
    else:
        where = (
            f"set the environment variable {env_name}"
            if env_name
            else "set secret_env to an environment variable holding it"
        )
        raise table.fail(
            "secret_env" if env_name else "secret",
            f"no {system.value} webhook secret: {where} to the secret the {system.value} "
            "system signs its webhooks with (the committed sandbox_secret is used only "
            "by the sandbox profile, crosswalk up)",
        )
    if len(secret) < 8:
        raise table.fail(key, "must be a string of at least 8 characters")
    tolerance = table.number("tolerance", default=300.0)
    return WebhookPolicy(system, scheme, secret, tolerance)
