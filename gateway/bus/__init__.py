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

__all__ = [
    "Bus",
    "BusError",
    "Gap",
    "MemoryBus",
    "Message",
    "nats_target",
    "new_replica_id",
    "open_bus",
]


def nats_target(url: str) -> tuple[str, str] | None:
    """(server URL, subject prefix) of a NATS bus URL (``?prefix=`` keeps deployments on
    one server apart; default ``crosswalk``), or None for any other bus."""
    parts = urlsplit(url or "memory://")
    if parts.scheme not in ("nats", "tls"):
        return None
    prefix = parse_qs(parts.query).get("prefix", ["crosswalk"])[-1]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), prefix


def open_bus(url: str, *, replica: str | None = None, capacity: int = DEFAULT_CAPACITY) -> Bus:
    """The bus for ``url``, to be entered: ``async with open_bus(url) as bus:``."""
    parts = urlsplit(url or "memory://")
    if parts.scheme == "memory":
        return MemoryBus(parts.netloc + parts.path, replica=replica, capacity=capacity)
    target = nats_target(url)
    if target is not None:
        from gateway.bus.nats import NatsBus

        server, prefix = target
        return NatsBus(server, replica=replica, prefix=prefix, capacity=capacity)
    raise BusError(f"unsupported bus URL {url!r}: memory:// or nats://host:port")
