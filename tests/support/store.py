"""The store as tests open it: a SQLite file in the test's own folder.

The ``store`` and ``store_url`` fixtures (tests/conftest.py) are built from these; the
store suite (tests/store) overrides both to run once per backend.
"""

from __future__ import annotations

from pathlib import Path

#: the gateway's default database file name
DB_NAME = "crosswalk.db"


def sqlite_url(folder: Path, name: str = DB_NAME) -> str:
    """The URL of a SQLite store in ``folder`` (created on first open)."""
    return f"sqlite:///{folder / name}"
