"""The PostgreSQL schema as numbered migrations, applied in order at open (the same rule
as SQLite's: never edit a released migration, add the next number).

Each migration runs inside the one transaction ``open`` migrates in, under an advisory
lock (replicas starting together wait for each other), with its ``schema_version`` row.

The tables hold what SQLite's hold, in the same representation (times as BIGINT
microseconds since the Unix epoch, JSON as TEXT, text compared byte by byte: ``COLLATE
"C"``, as SQLite's default), so both backends share the SQL of every
read and most writes (``gateway.store.sql``). What differs: the outbox has no heads table
(the lease locks the heads it finds with ``FOR UPDATE SKIP LOCKED``), and audit keys
follow their entry by a foreign key.
"""

from __future__ import annotations

from typing import Final

__all__ = ["LATEST_VERSION", "MIGRATIONS", "MIGRATION_LOCK"]

#: the advisory lock key migrations run under (any constant the project owns)
MIGRATION_LOCK: Final = 0x63772D6D6967  # "cw-mig"

MIGRATIONS: Final[dict[int, str]] = {
    1: """
CREATE TABLE operations (
    seq             BIGSERIAL PRIMARY KEY,
    id              TEXT COLLATE "C" NOT NULL UNIQUE,
    kind            TEXT COLLATE "C" NOT NULL,
    status          TEXT COLLATE "C" NOT NULL CHECK (status IN ('PENDING', 'RUNNING', 'SUCCEEDED',
                        'NEEDS_ATTENTION', 'FAILED', 'COMPENSATED')),
    correlation_id  TEXT COLLATE "C" NOT NULL,
    client_id       TEXT COLLATE "C" NOT NULL,
    aggregate_key   TEXT COLLATE "C" NOT NULL,
    input           TEXT COLLATE "C" NOT NULL,
    result          TEXT COLLATE "C",
    error           TEXT COLLATE "C",
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX operations_by_correlation ON operations (correlation_id, seq);
CREATE INDEX operations_by_aggregate ON operations (aggregate_key, seq);
CREATE INDEX operations_by_status ON operations (status, seq);

CREATE TABLE saga_steps (
    operation_id    TEXT COLLATE "C" NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
    name            TEXT COLLATE "C" NOT NULL,
    position        INTEGER NOT NULL,
    status          TEXT COLLATE "C" NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    result          TEXT COLLATE "C",
    error           TEXT COLLATE "C",
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (operation_id, name)
);

CREATE TABLE outbox (
    id                BIGSERIAL PRIMARY KEY,
    operation_id      TEXT COLLATE "C" REFERENCES operations (id),
    step              TEXT COLLATE "C" NOT NULL,
    aggregate_key     TEXT COLLATE "C" NOT NULL,
    system            TEXT COLLATE "C" NOT NULL,
    type              TEXT COLLATE "C" NOT NULL,
    payload           TEXT COLLATE "C" NOT NULL,
    idempotency_key   TEXT COLLATE "C" NOT NULL,
    priority          INTEGER NOT NULL DEFAULT 1,
    status            TEXT COLLATE "C" NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'leased', 'done', 'dead', 'discarded')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    available_at      BIGINT NOT NULL,
    lease_owner       TEXT COLLATE "C",
    lease_expires_at  BIGINT,
    last_error        TEXT COLLATE "C",
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    deliveries        INTEGER NOT NULL DEFAULT 0,
    lease_token       BIGINT
);
-- The messages that still block their aggregate: the lease takes the lowest id per
-- aggregate from this index, so done messages cost nothing however many pile up.
CREATE INDEX outbox_open_by_aggregate ON outbox (aggregate_key, id)
    WHERE status IN ('pending', 'leased', 'dead');
CREATE INDEX outbox_by_operation ON outbox (operation_id, id);
CREATE INDEX outbox_dead ON outbox (id) WHERE status = 'dead';
CREATE INDEX outbox_settled_by_time ON outbox (updated_at)
    WHERE status IN ('done', 'discarded');
-- Every lease takes the next token: a number that only grows, across replicas.
CREATE SEQUENCE outbox_lease_tokens;

CREATE TABLE idempotency (
    client_id     TEXT COLLATE "C" NOT NULL,
    key           TEXT COLLATE "C" NOT NULL,
    fingerprint   TEXT COLLATE "C" NOT NULL,
    state         TEXT COLLATE "C" NOT NULL CHECK (state IN ('in_flight', 'completed')),
    operation_id  TEXT COLLATE "C",
    response      TEXT COLLATE "C",
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    PRIMARY KEY (client_id, key)
);
CREATE INDEX idempotency_by_expiry ON idempotency (expires_at);

CREATE TABLE inbox (
    system        TEXT COLLATE "C" NOT NULL,
    event_id      TEXT COLLATE "C" NOT NULL,
    received_at   BIGINT NOT NULL,
    payload       TEXT COLLATE "C" NOT NULL,
    processed_at  BIGINT,
    applied_at    BIGINT,
    PRIMARY KEY (system, event_id)
);
CREATE INDEX inbox_processed_by_time ON inbox (processed_at) WHERE processed_at IS NOT NULL;
CREATE INDEX inbox_unapplied ON inbox (received_at) WHERE applied_at IS NULL;

CREATE TABLE audit (
    id              BIGSERIAL PRIMARY KEY,
    at              BIGINT NOT NULL,
    correlation_id  TEXT COLLATE "C",
    actor           TEXT COLLATE "C" NOT NULL,
    action          TEXT COLLATE "C" NOT NULL,
    subject         TEXT COLLATE "C" NOT NULL,
    detail          TEXT COLLATE "C"
);
CREATE INDEX audit_by_correlation ON audit (correlation_id, id);
CREATE INDEX audit_by_subject ON audit (subject, id);
CREATE INDEX audit_by_time ON audit (at);

CREATE TABLE audit_keys (
    key       TEXT COLLATE "C" NOT NULL,
    audit_id  BIGINT NOT NULL REFERENCES audit (id) ON DELETE CASCADE,
    PRIMARY KEY (key, audit_id)
);
CREATE INDEX audit_keys_by_entry ON audit_keys (audit_id);

CREATE TABLE xref (
    canonical_id  TEXT COLLATE "C" PRIMARY KEY,
    erp           TEXT COLLATE "C" UNIQUE,
    billing       TEXT COLLATE "C" UNIQUE,
    crm           TEXT COLLATE "C" UNIQUE,
    support       TEXT COLLATE "C" UNIQUE,
    name          TEXT COLLATE "C",
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE TABLE xref_alias (
    alias         TEXT COLLATE "C" PRIMARY KEY,
    canonical_id  TEXT COLLATE "C" NOT NULL REFERENCES xref (canonical_id) ON DELETE CASCADE
);
CREATE INDEX xref_alias_by_target ON xref_alias (canonical_id);

CREATE TABLE read_records (
    system      TEXT COLLATE "C" NOT NULL,
    kind        TEXT COLLATE "C" NOT NULL,
    id          TEXT COLLATE "C" NOT NULL,
    customer    TEXT COLLATE "C" NOT NULL,
    version     TEXT COLLATE "C" NOT NULL,
    data        TEXT COLLATE "C",
    deleted     INTEGER NOT NULL DEFAULT 0,
    learned_at  BIGINT NOT NULL,
    source      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (system, kind, id)
);
CREATE INDEX read_records_by_customer ON read_records (system, kind, customer);

CREATE TABLE read_coverage (
    system      TEXT COLLATE "C" NOT NULL,
    kind        TEXT COLLATE "C" NOT NULL,
    customer    TEXT COLLATE "C" NOT NULL,
    loaded_at   BIGINT NOT NULL,
    PRIMARY KEY (system, kind, customer)
);

CREATE TABLE read_feeds (
    system       TEXT COLLATE "C" NOT NULL,
    feed         TEXT COLLATE "C" NOT NULL,
    cursor       TEXT COLLATE "C",
    complete_at  BIGINT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (system, feed)
);

CREATE TABLE reconciliation_runs (
    id            BIGSERIAL PRIMARY KEY,
    started_at    BIGINT NOT NULL,
    finished_at   BIGINT NOT NULL,
    trigger       TEXT COLLATE "C" NOT NULL,
    customers     INTEGER NOT NULL,
    findings      INTEGER NOT NULL,
    repaired      INTEGER NOT NULL,
    incomplete    TEXT COLLATE "C" NOT NULL
);

CREATE TABLE reconciliation_findings (
    run_id     BIGINT NOT NULL REFERENCES reconciliation_runs (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    kind       TEXT COLLATE "C" NOT NULL,
    erp_bp     TEXT COLLATE "C",
    system     TEXT COLLATE "C" NOT NULL,
    record_id  TEXT COLLATE "C",
    field      TEXT COLLATE "C",
    expected   TEXT COLLATE "C",
    actual     TEXT COLLATE "C",
    repair     TEXT COLLATE "C",
    PRIMARY KEY (run_id, position)
);
""",
    # The lease reads the leasable messages in lease order (priority, then id) and stops
    # at its limit, instead of finding every aggregate's head first.
    2: """
CREATE INDEX outbox_leasable ON outbox (priority, id) WHERE status IN ('pending', 'leased');
""",
}

LATEST_VERSION: Final = max(MIGRATIONS)
