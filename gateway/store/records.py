"""Records the store reads and writes: frozen dataclasses and status enums.

Conventions shared by every backend:

- Times are aware UTC ``datetime`` values. Backends may store them differently (the SQL
  backends keep integer microseconds since the epoch) but always hand back aware UTC
  datetimes.
- JSON columns (operation input/result, saga step results, message payloads, stored
  responses, audit details, inbox payloads) are plain Python values that ``orjson`` can
  encode: dicts with ``str`` keys, lists, strings, numbers, booleans, ``None``.
- Ids are strings chosen by the caller (operations, canonical customer ids) except for
  outbox messages and audit entries, whose ids are integers assigned by the store in
  commit order.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Generic, TypeVar

import orjson

from canonical import System, XRef

__all__ = [
    "DEFAULT_IDEMPOTENCY_TTL",
    "JSON",
    "UNSET",
    "AuditEntry",
    "CoverageRow",
    "DriftFinding",
    "FeedRow",
    "IdempotencyOutcome",
    "IdempotencyRecord",
    "IdempotencyResult",
    "IdempotencyState",
    "InboxEvent",
    "MessageStatus",
    "NewAudit",
    "NewMessage",
    "Operation",
    "OperationStatus",
    "OutboxMessage",
    "OutboxStatus",
    "Page",
    "ReadRow",
    "ReconciliationRun",
    "SagaStep",
    "StepStatus",
    "Unset",
    "XRefRecord",
    "audit_keys",
    "payload_fingerprint",
    "utcnow",
]

T = TypeVar("T")

#: A value orjson can encode. Kept as ``Any`` so callers are not forced to cast.
JSON = Any

#: Idempotency records live this long unless the policy says otherwise (IETF draft: the
#: server decides and documents it; 24 hours covers a widget retrying through a day).
DEFAULT_IDEMPOTENCY_TTL: Final = timedelta(hours=24)


class Unset(enum.Enum):
    """Sentinel type for "argument not given" where ``None`` is a meaningful value."""

    UNSET = "UNSET"


UNSET: Final = Unset.UNSET


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (the store's default clock)."""
    return datetime.now(UTC)


def payload_fingerprint(payload: JSON) -> str:
    """SHA-256 hex digest of the payload's canonical JSON (sorted keys, no whitespace).

    Two payloads that differ only in key order have the same fingerprint, so a client
    re-serialising the same request does not trip ``IDEMPOTENCY_MISMATCH``.
    """
    canonical = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(canonical).hexdigest()


# ---------------------------------------------------------------- operations and sagas


class OperationStatus(enum.StrEnum):
    """Where a mutation stands, as the ``Operation`` type shows it."""

    PENDING = "PENDING"  # accepted and written, no step delivered yet
    RUNNING = "RUNNING"  # at least one step delivered, more to go
    SUCCEEDED = "SUCCEEDED"  # every step done
    NEEDS_ATTENTION = (
        "NEEDS_ATTENTION"  # a step dead-lettered; a person must look (reason in error)
    )
    FAILED = "FAILED"  # gave up for good without compensation
    COMPENSATED = "COMPENSATED"  # gave up and undid what the compensation policy undoes

    @property
    def terminal(self) -> bool:
        """True for statuses after which the saga makes no more progress by itself."""
        return self in _TERMINAL_OPERATION


_TERMINAL_OPERATION = frozenset(
    {OperationStatus.SUCCEEDED, OperationStatus.FAILED, OperationStatus.COMPENSATED}
)


class StepStatus(enum.StrEnum):
    """One saga step's state."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    COMPENSATING = "COMPENSATING"
    COMPENSATED = "COMPENSATED"
    SKIPPED = "SKIPPED"


@dataclass(frozen=True, slots=True)
class Operation:
    """A governed mutation and its outcome.

    ``aggregate_key`` is the customer the operation is about (canonical id or another
    stable customer key); outbox messages of one aggregate are delivered in order.
    ``error`` holds the reason shown with ``NEEDS_ATTENTION``/``FAILED``.
    """

    id: str
    kind: str
    status: OperationStatus
    correlation_id: str
    client_id: str
    aggregate_key: str
    input: JSON
    result: JSON
    error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SagaStep:
    """One step of an operation's saga, in the order the steps were first written."""

    operation_id: str
    name: str
    status: StepStatus
    attempts: int
    result: JSON
    error: str | None
    updated_at: datetime


# ---------------------------------------------------------------- outbox


class MessageStatus(enum.StrEnum):
    """An outbox message's life: pending -> leased -> done, or -> dead (-> pending on replay)."""

    PENDING = "pending"  # waiting for ``available_at``
    LEASED = "leased"  # a dispatcher holds it until ``lease_expires_at``
    DONE = "done"  # delivered and its saga step recorded
    DEAD = "dead"  # dead letter: blocks its aggregate until replayed or discarded
    DISCARDED = "discarded"  # dead letter given up by an operator; no longer blocks


@dataclass(frozen=True, slots=True)
class NewMessage:
    """An outbox message to enqueue.

    ``idempotency_key`` is what the dispatcher hands the vendor (derived from operation and
    step). ``priority``: lower is more urgent (``actors.messages.Priority`` values); it
    orders messages of different aggregates, never two of the same aggregate.
    ``available_at=None`` means now.
    """

    operation_id: str | None
    step: str
    aggregate_key: str
    system: str
    type: str
    payload: JSON
    idempotency_key: str
    priority: int = 1
    available_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """An outbox row as the dispatcher sees it.

    ``attempts`` counts failed deliveries reported with ``retry_later`` (and the one that
    ends in ``dead_letter``); ``defer`` and expired leases do not count.

    ``deliveries`` counts every time the message was leased, this lease included: ``1``
    means no earlier delivery can have reached the system (a lease that expired, a retry,
    a deferral or a hand-back all lease it again).
    """

    id: int
    operation_id: str | None
    step: str
    aggregate_key: str
    system: str
    type: str
    payload: JSON
    idempotency_key: str
    priority: int
    status: MessageStatus
    attempts: int
    available_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    deliveries: int = 0


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    """Message counts by system and status (statuses with no messages are absent)."""

    counts: Mapping[str, Mapping[MessageStatus, int]]
    #: when the oldest message still waiting for delivery (pending or leased) was written
    oldest_open: datetime | None = None

    def total(self, status: MessageStatus) -> int:
        """How many messages of every system are in ``status``."""
        return sum(by_status.get(status, 0) for by_status in self.counts.values())


# ---------------------------------------------------------------- idempotency


class IdempotencyState(enum.StrEnum):
    IN_FLIGHT = "in_flight"
    COMPLETED = "completed"


class IdempotencyOutcome(enum.StrEnum):
    """What ``begin_idempotent`` found (IETF Idempotency-Key draft semantics)."""

    NEW = "NEW"  # no live record: one was inserted in flight; go ahead
    REPLAY = "REPLAY"  # completed with the same fingerprint: answer the stored response
    CONFLICT = "CONFLICT"  # in flight with the same fingerprint: IDEMPOTENCY_CONFLICT (409)
    MISMATCH = "MISMATCH"  # live record with another fingerprint: IDEMPOTENCY_MISMATCH (422)


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """An ``Idempotency-Key`` as seen for one client.

    Keys are scoped by ``client_id``: two clients may use the same key independently.
    ``operation_id`` links the record to the operation it created; ``response`` is the
    stored answer once completed. A record past ``expires_at`` counts as absent.
    """

    client_id: str
    key: str
    fingerprint: str
    state: IdempotencyState
    operation_id: str | None
    response: JSON
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class IdempotencyResult:
    """The outcome of ``begin_idempotent`` and the live record it is about."""

    outcome: IdempotencyOutcome
    record: IdempotencyRecord


# ---------------------------------------------------------------- inbox, audit


@dataclass(frozen=True, slots=True)
class InboxEvent:
    """A webhook event received from ``system``, unique by (system, event_id)."""

    system: str
    event_id: str
    received_at: datetime
    payload: JSON
    processed_at: datetime | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit trail. ``id`` grows in commit order."""

    id: int
    at: datetime
    correlation_id: str | None
    actor: str
    action: str
    subject: str
    detail: JSON


@dataclass(frozen=True, slots=True)
class NewAudit:
    """An audit entry to append (``Transaction.append_audit``); ``at=None`` means now."""

    actor: str
    action: str
    subject: str
    correlation_id: str | None = None
    detail: JSON = None
    at: datetime | None = None


# a business key: an id-like token with a digit in it (in_1P9x..., 5000012, op_7f3a...),
# found in an entry's subject and the strings of its detail; version tokens (v1, v59)
# name an API, not a record
_TOKEN = re.compile(r"[A-Za-z0-9_\-]{3,128}")
_DIGIT = re.compile(r"[0-9]")
_VERSION = re.compile(r"^v[0-9]+$")
#: the most keys one entry is found by (a detail may carry a long list)
MAX_AUDIT_KEYS = 32


def audit_keys(subject: str, detail: JSON) -> list[str]:
    """The business keys an audit entry is found by (``Reader.audit_correlations``): the
    id-like tokens of its subject and of the strings in its detail, in order, at most
    ``MAX_AUDIT_KEYS``."""
    keys: dict[str, None] = {}
    texts: list[Any] = [subject, detail]
    while texts and len(keys) < MAX_AUDIT_KEYS:
        value = texts.pop(0)
        if isinstance(value, str):
            for token in _TOKEN.findall(value):
                if _DIGIT.search(token) and not _VERSION.match(token):
                    keys[token] = None
        elif isinstance(value, Mapping):
            texts.extend(value.values())
        elif isinstance(value, list | tuple):
            texts.extend(value)
    return list(keys)[:MAX_AUDIT_KEYS]


# ---------------------------------------------------------------- cross-references


@dataclass(frozen=True, slots=True)
class XRefRecord:
    """One customer in the cross-reference registry: its canonical id and each system's id.

    ``aliases`` are canonical ids of records merged into this one; they still resolve here.
    """

    canonical_id: str
    erp: str | None
    billing: str | None
    crm: str | None
    support: str | None
    name: str | None
    created_at: datetime
    updated_at: datetime
    aliases: tuple[str, ...] = ()

    def get(self, system: System) -> str | None:
        """This customer's id in ``system``, if known."""
        value: str | None = getattr(self, system.value)
        return value

    def ids(self) -> dict[System, str]:
        """The known ids by system."""
        return {s: v for s in System if (v := self.get(s)) is not None}

    def to_xref(self) -> XRef:
        """The canonical model's ``XRef`` for this customer."""
        return XRef(erp=self.erp, billing=self.billing, crm=self.crm, support=self.support)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing; pass ``next_cursor`` as ``after`` to get the next one."""

    items: tuple[T, ...]
    next_cursor: str | None = None


# ---------------------------------------------------------------- the read model


@dataclass(frozen=True, slots=True)
class ReadRow:
    """One record of a system's read model, keyed by (system, kind, id) in that system.

    ``customer`` is the record's customer in the same system (the slice a customer 360
    reads); ``version`` orders the states of one record (an older one never overwrites a
    newer one): the vendor's change time for an event, the moment a read began for a
    snapshot, as sortable text. ``data`` is the canonical record (``None`` when deleted).
    """

    system: str
    kind: str
    id: str
    customer: str
    version: str
    data: JSON
    deleted: bool
    learned_at: datetime
    source: str


@dataclass(frozen=True, slots=True)
class CoverageRow:
    """A customer's whole slice of one kind was read at ``loaded_at``: from then on the
    feeds keep it complete, so a missing record means there is none."""

    system: str
    kind: str
    customer: str
    loaded_at: datetime


@dataclass(frozen=True, slots=True)
class FeedRow:
    """Where a system's change feed was read up to: ``cursor`` (the feed's own position)
    and ``complete_at`` (the last moment the read model was known to hold every change)."""

    system: str
    feed: str
    cursor: str | None
    complete_at: datetime | None
    updated_at: datetime


# ---------------------------------------------------------------- reconciliation


@dataclass(frozen=True, slots=True)
class DriftFinding:
    """One drift a reconciliation found (the drift manifest's shape), and the repair
    operation written for it, if any."""

    kind: str
    erp_bp: str | None
    system: str
    record_id: str | None
    field: str | None
    expected: str | None
    actual: str | None
    repair: str | None = None


@dataclass(frozen=True, slots=True)
class ReconciliationRun:
    id: int
    started_at: datetime
    finished_at: datetime
    trigger: str  # "cli", "schedule", "api"
    customers: int
    findings: int
    repaired: int
    #: system -> why its feeds could not be read to the end
    incomplete: dict[str, str]
