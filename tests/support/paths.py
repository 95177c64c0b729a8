"""Where the repository is, for tests that read its files or start its processes."""

from __future__ import annotations

from pathlib import Path

#: the repository's root folder (the one with pyproject.toml)
ROOT = Path(__file__).resolve().parents[2]
#: the shipped policy folder
POLICIES = ROOT / "policies"
