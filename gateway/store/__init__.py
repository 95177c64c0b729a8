"""The store: operations, saga state, outbox, inbox, idempotency, audit, cross-references.

One interface (``gateway.store.interface``) with a backend per database. Open one with
``async with open_store("sqlite:///var/crosswalk.db") as store:``.
"""

from gateway.store.errors import (
    ConstraintViolation,
    IdempotencyStateError,
    LeaseLost,
    MigrationError,
    RecordNotFound,
    StoreBusy,
    StoreClosed,
    StoreError,
    UnsupportedStoreURL,
    XRefConflict,
)
from gateway.store.factory import open_store
from gateway.store.interface import Reader, Store, Transaction
from gateway.store.notify import OperationNotifier, OperationWatch, TooManyWatchers
from gateway.store.records import (
    DEFAULT_IDEMPOTENCY_TTL,
    UNSET,
    AuditEntry,
    IdempotencyOutcome,
    IdempotencyRecord,
    IdempotencyResult,
    IdempotencyState,
    InboxEvent,
    MessageStatus,
    NewMessage,
    Operation,
    OperationStatus,
    OutboxMessage,
    OutboxStatus,
    Page,
    SagaStep,
    StepStatus,
    XRefRecord,
    payload_fingerprint,
    utcnow,
)

__all__ = [
    "DEFAULT_IDEMPOTENCY_TTL",
    "UNSET",
    "AuditEntry",
    "ConstraintViolation",
    "IdempotencyOutcome",
    "IdempotencyRecord",
    "IdempotencyResult",
    "IdempotencyState",
    "IdempotencyStateError",
    "InboxEvent",
    "LeaseLost",
    "MessageStatus",
    "MigrationError",
    "NewMessage",
    "Operation",
    "OperationNotifier",
    "OperationStatus",
    "OperationWatch",
    "OutboxMessage",
    "OutboxStatus",
    "Page",
    "Reader",
    "RecordNotFound",
    "SagaStep",
    "StepStatus",
    "Store",
    "StoreBusy",
    "StoreClosed",
    "StoreError",
    "TooManyWatchers",
    "Transaction",
    "UnsupportedStoreURL",
    "XRefConflict",
    "XRefRecord",
    "open_store",
    "payload_fingerprint",
    "utcnow",
]
