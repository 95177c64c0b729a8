"""Webhook secrets and signature schemes from ``policies/webhooks.toml``.

One table per system (``[webhooks.erp]`` ...), each with ``scheme`` (bearer, stripe or
zendesk), ``secret`` (at least 8 characters), optional ``secret_env`` (an environment
variable that overrides ``secret``) and optional ``tolerance`` (seconds a signed timestamp
may be from now, default 300). Any problem raises ``PolicyError(file, key, reason)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from gateway.canonical import System
from gateway.governance._toml import PolicyTable, read_policy

__all__ = ["SCHEMES", "WebhookPolicy", "WebhooksPolicy", "load_webhooks_policy"]

SCHEMES = frozenset({"bearer", "stripe", "zendesk"})
_KEYS = {"scheme", "secret", "secret_env", "tolerance"}


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
    path: Path | str, *, environ: Mapping[str, str] | None = None
) -> WebhooksPolicy:
    """Read and validate ``path``; raise PolicyError naming the file, key and reason."""
    environ = os.environ if environ is None else environ
    data = read_policy(path, if_missing="copy policies/webhooks.toml")
    data.only({"webhooks"})
    tables = data.table("webhooks").per_member(System)
    systems = {system: _webhook(system, table, environ) for system, table in tables.items()}
    return WebhooksPolicy(data.file, MappingProxyType(systems))


def _webhook(system: System, table: PolicyTable, environ: Mapping[str, str]) -> WebhookPolicy:
    table.only(_KEYS)
    scheme = table.choice("scheme", sorted(SCHEMES))
    # secret_env, when set in the environment, wins over the file's secret
    env_name = table.string("secret_env") if "secret_env" in table else None
    if env_name and environ.get(env_name):
        secret = environ[env_name]
    else:
        secret = table.string("secret", default="")
    if len(secret) < 8:
        raise table.fail("secret", "must be a string of at least 8 characters")
    tolerance = table.number("tolerance", default=300.0)
    return WebhookPolicy(system, scheme, secret, tolerance)
