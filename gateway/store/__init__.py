"""The store: operations, outbox, inbox, idempotency, audit, cross-references."""
