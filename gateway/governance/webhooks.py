"""Webhook secrets and signature schemes from ``policies/webhooks.toml``."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from gateway.canonical import System
from gateway.governance.errors import PolicyError

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
    environ = os.environ if environ is None else environ
    file = str(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise PolicyError(file, "", "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(file, "", f"not valid TOML: {exc}") from None
    extra = set(data) - {"webhooks"}
    if extra:
        raise PolicyError(file, sorted(extra)[0], "unknown key; expected only [webhooks.*]")
    tables = data.get("webhooks")
    if not isinstance(tables, dict):
        raise PolicyError(file, "webhooks", "missing table [webhooks.<system>]")
    systems: dict[System, WebhookPolicy] = {}
    for name, table in tables.items():
        key = f"webhooks.{name}"
        try:
            system = System(name)
        except ValueError:
            raise PolicyError(
                file, key, f"unknown system; expected one of {[s.value for s in System]}"
            ) from None
        if not isinstance(table, dict):
            raise PolicyError(file, key, "must be a table")
        unknown = set(table) - _KEYS
        if unknown:
            raise PolicyError(
                file, f"{key}.{sorted(unknown)[0]}", f"unknown key; expected {sorted(_KEYS)}"
            )
        scheme = table.get("scheme")
        if scheme not in SCHEMES:
            raise PolicyError(
                file, f"{key}.scheme", f"must be one of {sorted(SCHEMES)}, got {scheme!r}"
            )
        secret = table.get("secret", "")
        env_name = table.get("secret_env")
        if env_name is not None and not isinstance(env_name, str):
            raise PolicyError(file, f"{key}.secret_env", "must be an environment variable name")
        if env_name and environ.get(env_name):
            secret = environ[env_name]
        if not isinstance(secret, str) or len(secret) < 8:
            raise PolicyError(file, f"{key}.secret", "must be a string of at least 8 characters")
        tolerance = table.get("tolerance", 300)
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or tolerance <= 0:
            raise PolicyError(file, f"{key}.tolerance", "must be a positive number of seconds")
        systems[system] = WebhookPolicy(system, scheme, secret, float(tolerance))
    missing = [s.value for s in System if s not in systems]
    if missing:
        raise PolicyError(file, f"webhooks.{missing[0]}", "missing: every system needs a secret")
    return WebhooksPolicy(file, MappingProxyType(systems))
