"""Governance: the policy files under ``policies/`` loaded into plain types (clients and
scopes, systems and their limits, field ownership, reference data, the outbox, the read
model, schedules, audit retention, SLOs, webhooks); ``policies.load_policies`` loads them
all."""
