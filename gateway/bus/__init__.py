"""The bus: news of what one gateway replica committed, for the others.

``open_bus(url)`` picks the backend: ``""`` or ``memory://`` (the default: one process,
nobody else to tell), ``memory://<name>`` (replicas in one process sharing a hub: tests),
``nats://host:4222`` (NATS JetStream; ``?prefix=name`` keeps several deployments on one
server apart, default ``crosswalk``). See ``gateway.bus.interface`` for the contract.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit, urlunsplit

from gateway.bus.interface import (
    DEFAULT_CAPACITY,
    Bus,
    BusError,
    Gap,
    Message,
    new_replica_id,
)
from gateway.bus.memory import MemoryBus

__all__ = ["Bus", "BusError", "Gap", "MemoryBus", "Message", "new_replica_id", "open_bus"]


def open_bus(url: str, *, replica: str | None = None, capacity: int = DEFAULT_CAPACITY) -> Bus:
    """The bus for ``url``, to be entered: ``async with open_bus(url) as bus:``."""
    parts = urlsplit(url or "memory://")
    if parts.scheme == "memory":
        return MemoryBus(parts.netloc + parts.path, replica=replica, capacity=capacity)
    if parts.scheme in ("nats", "tls"):
        from gateway.bus.nats import NatsBus

        prefix = parse_qs(parts.query).get("prefix", ["crosswalk"])[-1]
        server = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        return NatsBus(server, replica=replica, prefix=prefix, capacity=capacity)
    raise BusError(f"unsupported bus URL {url!r}: memory:// or nats://host:port")
