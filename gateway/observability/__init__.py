"""Observability: correlation ids, logs, tracing, metrics, service level objectives and the
audit trail of vendor calls."""
