"""Fixtures of the write-path tests: a SQLite store in tmp_path, reference data, fakes."""

from __future__ import annotations

import pytest

from gateway.governance.reference import ReferenceData, load_reference
from tests.processes.fakes import FakeSystems, World
from tests.support.paths import ROOT


@pytest.fixture
def reference() -> ReferenceData:
    return load_reference(ROOT / "policies" / "reference.toml")


@pytest.fixture
def world() -> World:
    w = World()
    for bp in ("1000001", "1000002", "1000003"):
        w.add_company(bp)
    return w


@pytest.fixture
def systems(world: World) -> FakeSystems:
    return FakeSystems(world)
