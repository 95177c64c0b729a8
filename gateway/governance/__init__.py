"""Governance: clients and scopes, per-system limits, field ownership, reference data."""
