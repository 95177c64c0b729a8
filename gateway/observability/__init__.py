"""Observability: correlation ids, logs, metrics, audit timeline."""
