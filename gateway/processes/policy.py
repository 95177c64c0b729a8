"""Write-path settings from ``policies/outbox.toml``: moved to ``gateway.governance.outbox``.

Kept as a re-export so ``gateway.processes`` keeps importing them from here.
"""

from __future__ import annotations

from gateway.governance.outbox import DispatchPolicy, OutboxPolicy, load_outbox_policy

__all__ = ["DispatchPolicy", "OutboxPolicy", "load_outbox_policy"]
