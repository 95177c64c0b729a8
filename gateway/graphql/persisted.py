"""Persisted operations by SHA-256 hash, in the automatic persisted queries (APQ) style.

A client sends ``extensions.persistedQuery = {"version": 1, "sha256Hash": "<hex>"}``
without the query; if the gateway knows the hash it runs that operation, else it answers
``PERSISTED_QUERY_NOT_FOUND`` and the client resends with the query, which is checked
against the hash and remembered (in a bounded LRU). A safelist (``*.graphql`` files in a
folder, usually ``policies/persisted/``) is always known; clients in "persisted
operations only" mode may run only safelisted operations.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

__all__ = ["PersistedOperations", "sha256_hex"]


def sha256_hex(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


class PersistedOperations:
    """The safelist plus a bounded cache of operations registered by clients."""

    def __init__(self, safelist: Mapping[str, str] | None = None, *, capacity: int = 2000) -> None:
        self.safelist: Mapping[str, str] = MappingProxyType(dict(safelist or {}))
        self.capacity = capacity
        self._registered: OrderedDict[str, str] = OrderedDict()

    @classmethod
    def from_folder(cls, folder: Path | str, *, capacity: int = 2000) -> PersistedOperations:
        """Safelist every ``*.graphql`` file in ``folder`` (a missing folder is empty)."""
        path = Path(folder)
        queries = [p.read_text() for p in sorted(path.glob("*.graphql"))] if path.is_dir() else []
        return cls({sha256_hex(q): q for q in queries}, capacity=capacity)

    def get(self, digest: str) -> str | None:
        query = self.safelist.get(digest)
        if query is not None:
            return query
        query = self._registered.get(digest)
        if query is not None:
            self._registered.move_to_end(digest)
        return query

    def is_safelisted(self, digest: str) -> bool:
        return digest in self.safelist

    def register(self, digest: str, query: str) -> None:
        """Remember ``query`` under ``digest``; the caller has checked that they match."""
        if digest in self.safelist:
            return
        self._registered[digest] = query
        self._registered.move_to_end(digest)
        while len(self._registered) > self.capacity:
            self._registered.popitem(last=False)
