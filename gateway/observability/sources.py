"""What the metrics collectors read of the running gateway, named here as protocols.

The gateway's runtime (``gateway.runtime.Runtime``) sits layers above observability, so
the collectors never import it: they read an ``Observed``, which the runtime satisfies
as it is. The read model and the quota live above observability too; their figures are
named by ``ReadModelFigures`` and ``QuotaFigures``, the replication's by
``ReplicationFigures``. The parts below observability (the actors, the store, the
policies, the bus) are named by their own types.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from actors import Systems
from canonical import System
from gateway.bus import Bus
from gateway.governance.policies import Policies
from gateway.observability.audit import AuditWriter
from gateway.observability.slo import CallCounters
from gateway.store import Store

__all__ = ["FeedFigures", "Observed", "QuotaFigures", "ReadModelFigures", "ReplicationFigures"]


class FeedFigures(Protocol):
    """One change feed's state, as the read model keeps it."""

    @property
    def last_error(self) -> str | None: ...


class ReadModelFigures(Protocol):
    """The read model's lag, size and event flow (``gateway.readmodel.model.ReadModel``)."""

    @property
    def events_applied(self) -> Mapping[System, int]: ...

    @property
    def feeds(self) -> Mapping[tuple[System, str], FeedFigures]: ...

    def lag(self, system: System) -> float | None: ...

    def count(self, system: System) -> int: ...


class QuotaFigures(Protocol):
    """Calls taken from and refused by each system's quota shares, by (system, purpose)
    (``gateway.readmodel.quota.Quota``)."""

    @property
    def spent(self) -> Mapping[tuple[System, str], int]: ...

    @property
    def refused(self) -> Mapping[tuple[System, str], int]: ...


class ReplicationFigures(Protocol):
    """The bus between replicas and the store re-reads after lost news
    (``gateway.processes.replication.Replication``; a runtime alone has none)."""

    @property
    def bus(self) -> Bus: ...

    @property
    def gaps(self) -> int: ...


class Observed(Protocol):
    """The running gateway as the collectors see it (``gateway.runtime.Runtime``).

    The optional parts are None in runtimes assembled without them.
    """

    @property
    def policies(self) -> Policies: ...

    @property
    def store(self) -> Store: ...

    @property
    def systems(self) -> Systems: ...

    @property
    def read_model(self) -> ReadModelFigures | None: ...

    @property
    def quota(self) -> QuotaFigures | None: ...

    @property
    def audit(self) -> AuditWriter | None: ...

    @property
    def slo(self) -> CallCounters | None: ...
