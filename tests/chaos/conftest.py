"""The four sandbox systems are served once for the whole chaos package (starting and
stopping four uvicorn servers per test would cost more than the tests); every test
resets them (chaos off, request log cleared, demo data seeded again) and builds its own
actors, so no breaker, limiter or pause carries over.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from canonical import System
from tests.chaos.world import CUSTOMERS, World
from tests.support.sandboxes import Sandbox, serve_sandboxes


@pytest.fixture(scope="package")
def anyio_backend() -> str:
    # package scope: the served sandboxes below live in one event loop for the package
    return "asyncio"


@pytest.fixture(scope="package")
async def sandboxes(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[dict[System, Sandbox]]:
    data_dir = tmp_path_factory.mktemp("chaos")
    async with serve_sandboxes(data_dir, customers=CUSTOMERS, lifted=True) as served:
        yield served


@pytest.fixture
async def world(sandboxes: dict[System, Sandbox]) -> World:
    for sandbox in sandboxes.values():
        await sandbox.reset()
    return World(sandboxes)
