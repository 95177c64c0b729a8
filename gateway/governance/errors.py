"""Policy errors: a broken file in ``policies/`` stops start-up with the file, key and reason."""

from __future__ import annotations

from pathlib import Path

__all__ = ["PolicyError"]


class PolicyError(ValueError):
    """A policy file is missing, unreadable or holds a value that cannot be used.

    ``str(err)`` reads ``policies/systems.toml: systems.erp.rate.per_second: must be a
    positive number, got -1``.
    """

    def __init__(self, file: Path | str, key: str, reason: str) -> None:
        self.file = str(file)
        self.key = key
        self.reason = reason
        super().__init__(f"{self.file}: {key}: {reason}" if key else f"{self.file}: {reason}")
