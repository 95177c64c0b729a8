"""Fixtures of the write-path tests: a SQLite store in tmp_path, reference data, fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.governance.reference import ReferenceData, load_reference
from gateway.store import Store, open_store
from tests.processes.fakes import FakeSystems, World

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def reference() -> ReferenceData:
    return load_reference(ROOT / "policies" / "reference.toml")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(f"sqlite:///{tmp_path / 'gw.db'}") as opened:
        yield opened


@pytest.fixture
def world() -> World:
    w = World()
    for bp in ("1000001", "1000002", "1000003"):
        w.add_company(bp)
    return w


@pytest.fixture
def systems(world: World) -> FakeSystems:
    return FakeSystems(world)
