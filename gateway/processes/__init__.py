"""Process APIs: the sagas behind the governed mutations, and the outbox dispatcher.

- ``write_path.WritePath`` accepts a mutation: idempotency, canonical validation, one
  transaction (operation, saga steps, first outbox message, idempotency record);
- ``onboarding``, ``quote_to_cash``, ``case_to_resolution`` (open, escalate),
  ``resolve_case``, ``renewal``: one module per flow, each documenting its steps and its
  compensation policy;
- ``reactions`` and ``event_flows``: the flows that events in the vendors' own screens
  start;
- ``dispatcher.Dispatcher`` delivers the outbox to the system actors;
- ``replay`` and ``outbox_cli`` let operators see and replay dead letters.
"""

from gateway.processes.context import Caller
from gateway.processes.dispatcher import Dispatcher
from gateway.processes.errors import (
    CommandError,
    IdempotencyConflict,
    IdempotencyMismatch,
    OperationNotFound,
    ValidationFailed,
)
from gateway.processes.flows import COMMANDS, FLOWS
from gateway.processes.replay import replay_all, replay_dead_letter
from gateway.processes.views import DeadLetterView, OperationView, StepView
from gateway.processes.write_path import WritePath, write_path_for

__all__ = [
    "COMMANDS",
    "FLOWS",
    "Caller",
    "CommandError",
    "DeadLetterView",
    "Dispatcher",
    "IdempotencyConflict",
    "IdempotencyMismatch",
    "OperationNotFound",
    "OperationView",
    "StepView",
    "ValidationFailed",
    "WritePath",
    "replay_all",
    "replay_dead_letter",
    "write_path_for",
]
