"""Idempotency records (IETF Idempotency-Key draft): the part of the contract that makes
a client's retry answer what the first request answered.

Records are keyed by (client id, key) and carry the fingerprint of the request. Of
concurrent ``begin_idempotent`` calls for one key, across tasks and processes sharing the
database, exactly one gets NEW; the others get CONFLICT while it is in flight, REPLAY once
it completed (same fingerprint) or MISMATCH (another fingerprint).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime, timedelta

from gateway.store.records import (
    DEFAULT_IDEMPOTENCY_TTL,
    JSON,
    IdempotencyRecord,
    IdempotencyResult,
)
from gateway.store.units import Units

__all__ = ["IdempotencyReads", "IdempotencyShortcuts", "IdempotencyWrites"]


class IdempotencyReads(ABC):
    @abstractmethod
    async def get_idempotency(
        self, client_id: str, key: str, *, now: datetime | None = None
    ) -> IdempotencyRecord | None:
        """The live record for (client, key); an expired record reads as ``None``."""


class IdempotencyWrites(ABC):
    @abstractmethod
    async def begin_idempotent(
        self,
        client_id: str,
        key: str,
        fingerprint: str,
        *,
        operation_id: str | None = None,
        now: datetime | None = None,
        ttl: timedelta = DEFAULT_IDEMPOTENCY_TTL,
    ) -> IdempotencyResult:
        """Claim (client, key) for a request with this payload ``fingerprint``.

        NEW: no live record existed; one is now in flight (write the operation in the same
        transaction so both commit or neither). REPLAY: completed with the same
        fingerprint; answer ``record.response``. CONFLICT: in flight with the same
        fingerprint. MISMATCH: a live record with another fingerprint (in flight or not).
        An expired record is replaced as if absent.
        """

    @abstractmethod
    async def complete_idempotent(
        self,
        client_id: str,
        key: str,
        response: JSON,
        *,
        operation_id: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Store the response and mark the record completed (expiry unchanged); also
        sets ``operation_id`` if given. Raises ``IdempotencyStateError`` if there is no
        live record (a backend may hold back the write of a key claimed in the same
        unit: it knows the record is there)."""

    @abstractmethod
    async def release_idempotent(self, client_id: str, key: str) -> bool:
        """Drop an in-flight record (the request failed before doing anything), so the
        client may retry with the same key. False if there was none in flight."""

    @abstractmethod
    async def purge_expired(self, *, now: datetime | None = None, limit: int | None = None) -> int:
        """Delete expired idempotency records; returns how many."""


class IdempotencyShortcuts(Units):
    async def get_idempotency(
        self, client_id: str, key: str, *, now: datetime | None = None
    ) -> IdempotencyRecord | None:
        async with self._shortcut_reader() as r:
            return await r.get_idempotency(client_id, key, now=now)

    async def purge_expired(self, *, now: datetime | None = None, limit: int | None = None) -> int:
        async with self.transaction() as tx:
            return await tx.purge_expired(now=now, limit=limit)
