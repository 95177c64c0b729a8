"""System APIs: one async actor per back-office system, each owning its connector.

``Systems`` opens all four from ``policies/systems.toml``; ``SystemActor`` is one of them
(see ``actors.system`` for the API); ``Actor`` is the generic runtime underneath.
"""

from actors._actor import Actor, Envelope, Reply
from actors._breaker import AsyncBreaker
from actors._cache import LastKnownGood
from actors._stats import LATENCY_BUCKETS, ActorStats, StatsSnapshot, SystemState
from actors.calls import CallObserver, VendorCall
from actors.system import SystemActor
from actors.systems import DEFAULT_CONNECTORS, ConnectorFactory, Systems

__all__ = [
    "DEFAULT_CONNECTORS",
    "LATENCY_BUCKETS",
    "Actor",
    "ActorStats",
    "AsyncBreaker",
    "CallObserver",
    "ConnectorFactory",
    "Envelope",
    "LastKnownGood",
    "Reply",
    "StatsSnapshot",
    "SystemActor",
    "SystemState",
    "Systems",
    "VendorCall",
]
