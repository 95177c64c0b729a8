"""The PostgreSQL backend: ``PostgresStore``, built by ``open_store("postgresql://...")``."""

from gateway.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
