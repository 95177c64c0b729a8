"""``SQLiteTransaction``: the ``Transaction`` of the SQLite backend, composed of one part
per area of the contract (each module beside this one holds its SQL)."""

from __future__ import annotations

from gateway.store.interface import Transaction
from gateway.store.sqlite.idempotency import SQLiteIdempotencyWrites
from gateway.store.sqlite.journal import SQLiteJournalWrites
from gateway.store.sqlite.operations import SQLiteOperationWrites
from gateway.store.sqlite.outbox import SQLiteOutboxWrites
from gateway.store.sqlite.read_model import SQLiteReadModelWrites
from gateway.store.sqlite.xref import SQLiteXRefWrites

__all__ = ["SQLiteTransaction"]


class SQLiteTransaction(
    SQLiteOperationWrites,
    SQLiteOutboxWrites,
    SQLiteIdempotencyWrites,
    SQLiteJournalWrites,
    SQLiteReadModelWrites,
    SQLiteXRefWrites,
    Transaction,
):
    """Every write of one unit of work on the writer connection; the store commits or
    rolls back (see ``unit``)."""
