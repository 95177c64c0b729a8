"""System APIs: one async actor per back-office system, each owning its connector.

``Systems`` (``actors.fleet``) opens all four from ``policies/systems.toml``;
``SystemActor`` (``actors.system_actor``) is one of them, with its API; ``Actor``
(``actors._actor``) is the generic mailbox-and-workers runtime underneath.

Each system's connector is a package of its own: ``actors.erp`` (SAP OData),
``actors.billing`` (Stripe), ``actors.crm`` (Salesforce), ``actors.support`` (Zendesk),
each split into ``connector`` (what each message does), ``mapping`` (vendor JSON <->
canonical model), ``paging`` (the vendor's calls, pages and feeds) and ``errors`` (the
vendor's error table). What they share: ``actors.connector`` (the contract and the HTTP
base), ``actors.errors`` (the error tree, the status table, the ``Retry-After`` parser).
"""

from actors._actor import Actor
from actors._breaker import AsyncBreaker
from actors._cache import LastKnownGood
from actors._envelope import Envelope, Reply
from actors._stats import LATENCY_BUCKETS, ActorStats, StatsSnapshot, SystemState
from actors.calls import CallObserver, VendorCall
from actors.fleet import DEFAULT_CONNECTORS, ConnectorFactory, Systems
from actors.system_actor import SystemActor

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
