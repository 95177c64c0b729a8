"""All policy files, loaded and validated together at start-up.

``load_policies(folder)`` reads every file and raises the first ``PolicyError``;
``check_policies(folder)`` reads every file and returns every file's error, for
``crosswalk policies check``. ``profile`` (``gateway.governance.profiles``) says whether
the committed demo secrets may stand in for missing ones (sandbox) or not (production).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.governance.audit import AuditPolicy, load_audit_policy
from gateway.governance.clients import ClientsPolicy, load_clients_policy
from gateway.governance.errors import PolicyError
from gateway.governance.outbox import OutboxPolicy, load_outbox_policy
from gateway.governance.ownership import OwnershipPolicy, load_ownership_policy
from gateway.governance.profiles import SANDBOX
from gateway.governance.readmodel import ReadModelPolicy, load_readmodel_policy
from gateway.governance.reference import ReferenceData, load_reference
from gateway.governance.schedules import Schedules, load_schedules
from gateway.governance.slo import SloPolicy, load_slo_policy
from gateway.governance.systems import SystemsPolicy, load_systems_policy
from gateway.governance.webhooks import WebhooksPolicy, load_webhooks_policy

__all__ = ["Policies", "check_policies", "load_policies"]


@dataclass(frozen=True, slots=True)
class Policies:
    folder: Path
    systems: SystemsPolicy
    clients: ClientsPolicy
    webhooks: WebhooksPolicy
    ownership: OwnershipPolicy
    reference: ReferenceData
    outbox: OutboxPolicy
    readmodel: ReadModelPolicy
    schedules: Schedules
    audit: AuditPolicy
    slo: SloPolicy


_FILES: dict[str, tuple[str, Callable[..., Any]]] = {
    "systems": ("systems.toml", load_systems_policy),
    "clients": ("clients.toml", load_clients_policy),
    "webhooks": ("webhooks.toml", load_webhooks_policy),
    "ownership": ("ownership.toml", load_ownership_policy),
    "reference": ("reference.toml", load_reference),
    "outbox": ("outbox.toml", load_outbox_policy),
    "readmodel": ("readmodel.toml", load_readmodel_policy),
    "schedules": ("schedules.toml", load_schedules),
    "audit": ("audit.toml", load_audit_policy),
    "slo": ("slo.toml", load_slo_policy),
}
#: the loaders whose secrets depend on the profile
_PROFILED = {"systems", "webhooks"}


def _load(name: str, folder: Path, profile: str) -> Any:
    file, loader = _FILES[name]
    if name in _PROFILED:
        return loader(folder / file, profile=profile)
    return loader(folder / file)


def load_policies(folder: Path | str, *, profile: str = SANDBOX) -> Policies:
    folder = Path(folder)
    loaded = {name: _load(name, folder, profile) for name in _FILES}
    return Policies(folder=folder, **loaded)


def check_policies(folder: Path | str, *, profile: str = SANDBOX) -> list[PolicyError]:
    folder = Path(folder)
    problems: list[PolicyError] = []
    for name in _FILES:
        try:
            _load(name, folder, profile)
        except PolicyError as exc:
            problems.append(exc)
    return problems
