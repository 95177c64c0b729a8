"""Where the write path finds its policies on a ``gateway.runtime.Runtime``.

Each look-up prefers what the runtime's ``Policies`` carries (``reference``, ``outbox``,
``ownership``) and falls back to reading the file from the policy folder, so the write
path works whether or not the aggregated policy loader knows these files yet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gateway.governance.reference import ReferenceData, load_reference
from gateway.processes.policy import OutboxPolicy, load_outbox_policy

__all__ = ["outbox_policy_of", "owner_lookup", "policies_dir", "reference_of"]


def policies_dir(runtime: Any) -> Path:
    folder: Any = getattr(runtime.policies, "folder", None)
    if folder is None:
        folder = getattr(runtime.settings, "policies_dir", "policies")
    return Path(str(folder))


def reference_of(runtime: Any) -> ReferenceData:
    loaded = getattr(runtime.policies, "reference", None)
    if isinstance(loaded, ReferenceData):
        return loaded
    return load_reference(policies_dir(runtime) / "reference.toml")


def outbox_policy_of(runtime: Any) -> OutboxPolicy:
    loaded = getattr(runtime.policies, "outbox", None)
    if isinstance(loaded, OutboxPolicy):
        return loaded
    return load_outbox_policy(policies_dir(runtime) / "outbox.toml")


def owner_lookup(runtime: Any) -> Callable[[str], str | None]:
    """``field -> owning system`` from the ownership policy, whatever shape it has:
    an ``owner_of(field)``/``owner(field)`` method or a ``fields`` mapping."""
    policy = getattr(runtime.policies, "ownership", None)
    if policy is None:
        return lambda _field: None
    for name in ("owner_of", "owner"):
        method = getattr(policy, name, None)
        if callable(method):
            return _safe(method)
    fields = getattr(policy, "fields", None)
    if isinstance(fields, Mapping):
        return lambda field: _system_name(fields.get(field))
    return lambda _field: None


def _safe(method: Callable[[str], Any]) -> Callable[[str], str | None]:
    def lookup(field: str) -> str | None:
        try:
            return _system_name(method(field))
        except (KeyError, LookupError):
            return None

    return lookup


def _system_name(value: Any) -> str | None:
    if value is None:
        return None
    value = getattr(value, "value", value)  # a System enum
    value = getattr(value, "system", value)  # a rule object naming its system
    value = getattr(value, "value", value)
    return str(value) if value else None
