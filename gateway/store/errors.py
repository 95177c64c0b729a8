"""Errors raised by the store.

The tree::

    StoreError                  anything the store refuses or cannot do
    +-- StoreClosed             used before ``open`` / after ``close``
    +-- UnsupportedStoreURL     ``open_store`` got a URL whose scheme has no backend (ValueError)
    +-- StoreBusy               the write lock was not free within the timeout (TimeoutError)
    +-- MigrationError          the database schema is newer than this code, or a migration failed
    +-- StaleOperation          an operation changed since the version a unit was given
    +-- LeaseLost               an outbox message is no longer leased by the caller
    +-- ConstraintViolation     a write broke a uniqueness or reference rule (ValueError)
    +-- IdempotencyStateError   complete_idempotent on a record that was never begun
    +-- XRefConflict            linking ids that contradict what the registry already holds
"""

from __future__ import annotations

__all__ = [
    "ConstraintViolation",
    "IdempotencyStateError",
    "LeaseLost",
    "MigrationError",
    "StoreBusy",
    "StoreClosed",
    "StoreError",
    "UnsupportedStoreURL",
    "XRefConflict",
]


class StoreError(Exception):
    """Base of every error the store raises on purpose."""


class StoreClosed(StoreError):
    """The store is not open: use it inside ``async with open_store(url) as store:``."""


class UnsupportedStoreURL(StoreError, ValueError):
    """The URL's scheme names no store backend (expected ``sqlite:///path/to/file.db``)."""


class StoreBusy(StoreError, TimeoutError):
    """The database stayed locked by another writer for longer than the busy timeout.

    Another process (or a long transaction in this one) holds the write lock; keep
    transactions short, or raise ``busy_timeout`` in the store URL.
    """


class MigrationError(StoreError):
    """The schema could not be brought to the version this code expects."""


class StaleOperation(StoreError):
    """An operation changed since the version a unit of work was given to update.

    Raised by ``Transaction.update_operation(operation, ...)`` when the stored row is no
    longer that version (with ``verify=True``: another process or transaction changed it)
    or no longer there. The unit must be rolled back and redone from a fresh read.
    """


class LeaseLost(StoreError):
    """The outbox message is not (or no longer) leased by this owner.

    Raised by ``complete``/``retry_later``/``defer``/``dead_letter`` when the lease expired
    and another dispatcher took the message over, or the message was never leased. The
    enclosing transaction should roll back: the new owner will deliver the message again,
    which the downstream idempotency key makes harmless.
    """


class ConstraintViolation(StoreError, ValueError):
    """A write broke a database rule: a reused operation id, a saga step written twice,
    an outbox message naming an operation that does not exist. The unit of work is
    rolled back; the message names the rule. Backends raise this rather than their
    driver's own error, so callers need not know which database is underneath."""


class IdempotencyStateError(StoreError):
    """``complete_idempotent`` was called for a key that has no in-flight record."""


class XRefConflict(StoreError):
    """Linking ids would give one customer two ids in the same system.

    The message names the system, the id already registered and the id offered; fix the
    registry by hand (or unlink the stale record) rather than guessing which one is right.
    """
