"""The SQLite backend (the embedded default): ``SQLiteStore``, built by ``open_store``."""

from gateway.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
