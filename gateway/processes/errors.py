"""Errors the write path answers a mutation with, before anything is written.

The tree::

    CommandError                 a mutation refused; ``code`` is the GraphQL extensions.code
    +-- ValidationFailed         canonical validation failed; ``fields`` names each problem
    +-- IdempotencyConflict      same key, same payload, the first request is still running
    +-- IdempotencyMismatch      same key, another payload
    +-- OperationNotFound        no operation / dead letter with that id

The GraphQL layer turns each into a coded error (``extensions.code``; validation errors
also carry ``extensions.fields: [{field, reason}]``).
"""

from __future__ import annotations

from collections.abc import Sequence

from canonical.validation import FieldProblem

__all__ = [
    "CommandError",
    "FieldProblem",
    "IdempotencyConflict",
    "IdempotencyMismatch",
    "OperationNotFound",
    "ValidationFailed",
]


class CommandError(Exception):
    """A mutation refused before anything was written."""

    code = "VALIDATION_FAILED"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationFailed(CommandError):
    """The input broke canonical rules; nothing was written and nothing queued."""

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        self.problems = tuple(problems)
        listed = "; ".join(f"{p.field}: {p.reason}" for p in self.problems)
        super().__init__(f"Validation failed, nothing was written: {listed}")


class IdempotencyConflict(CommandError):
    """The first request with this Idempotency-Key is still being processed."""

    code = "IDEMPOTENCY_CONFLICT"


class IdempotencyMismatch(CommandError):
    """The Idempotency-Key was already used with another payload."""

    code = "IDEMPOTENCY_MISMATCH"


class OperationNotFound(CommandError, LookupError):
    """No operation or dead letter with the id given."""

    code = "NOT_FOUND"
