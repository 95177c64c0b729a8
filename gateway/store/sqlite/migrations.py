"""The SQLite schema as numbered migrations, applied in order at open.

Rules: never edit a released migration, add the next number. Each migration runs inside
the one transaction ``open`` uses to migrate, together with its ``schema_version`` row, so
a crash mid-migration leaves the previous version intact.

Times are INTEGER microseconds since the Unix epoch (exact, sortable); JSON is TEXT.
"""

from __future__ import annotations

import sqlite3
from typing import Final

__all__ = ["LATEST_VERSION", "MIGRATIONS", "statements"]

MIGRATIONS: Final[dict[int, str]] = {
    1: """
CREATE TABLE operations (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('PENDING', 'RUNNING', 'SUCCEEDED',
                        'NEEDS_ATTENTION', 'FAILED', 'COMPENSATED')),
    correlation_id  TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    aggregate_key   TEXT NOT NULL,
    input           TEXT NOT NULL,
    result          TEXT,
    error           TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX operations_by_correlation ON operations (correlation_id, seq);
CREATE INDEX operations_by_aggregate ON operations (aggregate_key, seq);
CREATE INDEX operations_by_status ON operations (status, seq);

CREATE TABLE saga_steps (
    operation_id    TEXT NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    position        INTEGER NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    result          TEXT,
    error           TEXT,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (operation_id, name)
) WITHOUT ROWID;

CREATE TABLE outbox (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    operation_id      TEXT REFERENCES operations (id),
    step              TEXT NOT NULL,
    aggregate_key     TEXT NOT NULL,
    system            TEXT NOT NULL,
    type              TEXT NOT NULL,
    payload           TEXT NOT NULL,
    idempotency_key   TEXT NOT NULL,
    priority          INTEGER NOT NULL DEFAULT 1,
    status            TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'leased', 'done', 'dead', 'discarded')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    available_at      INTEGER NOT NULL,
    lease_owner       TEXT,
    lease_expires_at  INTEGER,
    last_error        TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
-- The messages that still block their aggregate: the lease query takes the lowest id per
-- aggregate from this index, so done messages cost nothing however many pile up.
CREATE INDEX outbox_open_by_aggregate ON outbox (aggregate_key, id)
    WHERE status IN ('pending', 'leased', 'dead');
CREATE INDEX outbox_by_operation ON outbox (operation_id, id);
CREATE INDEX outbox_dead ON outbox (id) WHERE status = 'dead';

CREATE TABLE idempotency (
    client_id     TEXT NOT NULL,
    key           TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('in_flight', 'completed')),
    operation_id  TEXT,
    response      TEXT,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    PRIMARY KEY (client_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_by_expiry ON idempotency (expires_at);

CREATE TABLE inbox (
    system        TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    received_at   INTEGER NOT NULL,
    payload       TEXT NOT NULL,
    processed_at  INTEGER,
    PRIMARY KEY (system, event_id)
) WITHOUT ROWID;

CREATE TABLE audit (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              INTEGER NOT NULL,
    correlation_id  TEXT,
    actor           TEXT NOT NULL,
    action          TEXT NOT NULL,
    subject         TEXT NOT NULL,
    detail          TEXT
);
CREATE INDEX audit_by_correlation ON audit (correlation_id, id);
CREATE INDEX audit_by_subject ON audit (subject, id);

CREATE TABLE xref (
    canonical_id  TEXT PRIMARY KEY,
    erp           TEXT UNIQUE,
    billing       TEXT UNIQUE,
    crm           TEXT UNIQUE,
    support       TEXT UNIQUE,
    name          TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE TABLE xref_alias (
    alias         TEXT PRIMARY KEY,
    canonical_id  TEXT NOT NULL REFERENCES xref (canonical_id) ON DELETE CASCADE
);
CREATE INDEX xref_alias_by_target ON xref_alias (canonical_id);
""",
    # The head of each aggregate's queue (its lowest open message), kept by triggers in
    # the same transaction as every outbox change, so leasing reads the due heads through
    # an index instead of grouping the whole open backlog. due_at: when the head can be
    # leased (available_at if pending, lease_expires_at if leased); NULL for a dead letter,
    # which blocks its aggregate.
    2: """
CREATE TABLE outbox_heads (
    aggregate_key  TEXT PRIMARY KEY,
    message_id     INTEGER NOT NULL,
    priority       INTEGER NOT NULL,
    due_at         INTEGER
) WITHOUT ROWID;
CREATE INDEX outbox_heads_by_due ON outbox_heads (due_at) WHERE due_at IS NOT NULL;

INSERT INTO outbox_heads (aggregate_key, message_id, priority, due_at)
SELECT o.aggregate_key, o.id, o.priority,
       CASE o.status WHEN 'pending' THEN o.available_at WHEN 'leased' THEN o.lease_expires_at END
FROM (SELECT min(id) AS id FROM outbox
      WHERE status IN ('pending', 'leased', 'dead') GROUP BY aggregate_key) AS h
JOIN outbox AS o ON o.id = h.id;

-- A new message has the highest id of its aggregate: it is the head only if there is none.
CREATE TRIGGER outbox_heads_on_insert AFTER INSERT ON outbox BEGIN
    INSERT OR IGNORE INTO outbox_heads (aggregate_key, message_id, priority, due_at)
    VALUES (NEW.aggregate_key, NEW.id, NEW.priority, NEW.available_at);
END;

CREATE TRIGGER outbox_heads_on_update
AFTER UPDATE OF status, available_at, lease_expires_at ON outbox BEGIN
    DELETE FROM outbox_heads WHERE aggregate_key = NEW.aggregate_key;
    INSERT INTO outbox_heads (aggregate_key, message_id, priority, due_at)
    SELECT aggregate_key, id, priority,
           CASE status WHEN 'pending' THEN available_at WHEN 'leased' THEN lease_expires_at END
    FROM outbox
    WHERE aggregate_key = NEW.aggregate_key AND status IN ('pending', 'leased', 'dead')
    ORDER BY id LIMIT 1;
END;
""",
    # Retention: find settled outbox messages and handled inbox events by age cheaply.
    3: """
CREATE INDEX outbox_settled_by_time ON outbox (updated_at)
    WHERE status IN ('done', 'discarded');
CREATE INDEX inbox_processed_by_time ON inbox (processed_at)
    WHERE processed_at IS NOT NULL;
""",
    # How often each message was handed out (leases): a first delivery knows no earlier
    # one reached the system, so a connector may skip its check-before-create lookup.
    4: """
ALTER TABLE outbox ADD COLUMN deliveries INTEGER NOT NULL DEFAULT 0;
""",
    # The read model: each system's records as the feeds last told them, which customer
    # slices were read whole, where each change feed was read up to; and which inbox events
    # the read model has applied (events stored before this migration count as applied:
    # the first catch-up reads their changes from the feeds).
    5: """
ALTER TABLE inbox ADD COLUMN applied_at INTEGER;
UPDATE inbox SET applied_at = received_at;
CREATE INDEX inbox_unapplied ON inbox (received_at) WHERE applied_at IS NULL;

CREATE TABLE read_records (
    system      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    id          TEXT NOT NULL,
    customer    TEXT NOT NULL,
    version     TEXT NOT NULL,
    data        TEXT,
    deleted     INTEGER NOT NULL DEFAULT 0,
    learned_at  INTEGER NOT NULL,
    source      TEXT NOT NULL,
    PRIMARY KEY (system, kind, id)
) WITHOUT ROWID;
CREATE INDEX read_records_by_customer ON read_records (system, kind, customer);

CREATE TABLE read_coverage (
    system      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    customer    TEXT NOT NULL,
    loaded_at   INTEGER NOT NULL,
    PRIMARY KEY (system, kind, customer)
) WITHOUT ROWID;

CREATE TABLE read_feeds (
    system       TEXT NOT NULL,
    feed         TEXT NOT NULL,
    cursor       TEXT,
    complete_at  INTEGER,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (system, feed)
) WITHOUT ROWID;
""",
    # Reconciliation runs and their findings (the drift manifest's shape), for
    # Query.reconciliation and the SLO on data consistency.
    6: """
CREATE TABLE reconciliation_runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER NOT NULL,
    trigger       TEXT NOT NULL,
    customers     INTEGER NOT NULL,
    findings      INTEGER NOT NULL,
    repaired      INTEGER NOT NULL,
    incomplete    TEXT NOT NULL
);

CREATE TABLE reconciliation_findings (
    run_id     INTEGER NOT NULL REFERENCES reconciliation_runs (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    erp_bp     TEXT,
    system     TEXT NOT NULL,
    record_id  TEXT,
    field      TEXT,
    expected   TEXT,
    actual     TEXT,
    repair     TEXT,
    PRIMARY KEY (run_id, position)
) WITHOUT ROWID;
""",
    # The audit trail by business key (an invoice, an order number, a case or operation
    # id named in an entry's subject or detail: gateway.store.records.audit_keys), so a
    # trace by key finds its correlation ids through an index; and by age, so retention
    # deletes the oldest entries in small batches. An entry's keys go with it.
    7: """
CREATE TABLE audit_keys (
    key       TEXT NOT NULL,
    audit_id  INTEGER NOT NULL,
    PRIMARY KEY (key, audit_id)
) WITHOUT ROWID;
CREATE INDEX audit_keys_by_entry ON audit_keys (audit_id);
CREATE INDEX audit_by_time ON audit (at);

CREATE TRIGGER audit_keys_on_delete AFTER DELETE ON audit BEGIN
    DELETE FROM audit_keys WHERE audit_id = OLD.id;
END;
""",
}

LATEST_VERSION: Final = max(MIGRATIONS)


def statements(script: str) -> list[str]:
    """Split a migration into single statements (``executescript`` would commit first)."""
    result: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("--")):
            continue
        current.append(line)
        text = "\n".join(current)
        if sqlite3.complete_statement(text):
            result.append(text.strip())
            current = []
    if current and "\n".join(current).strip():
        raise ValueError(f"migration ends inside a statement: {' '.join(current)[:80]!r}")
    return result
