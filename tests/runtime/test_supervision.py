"""Background tasks are supervised: a crash restarts them, never leaves a zombie runtime."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

import gateway.runtime as runtime_module
from gateway.processes.discovery import DiscoveryReport
from gateway.runtime import open_runtime, supervise
from gateway.settings import Settings
from tests.support.paths import ROOT

pytestmark = pytest.mark.anyio


async def test_supervise_restarts_a_crashed_task_with_back_off() -> None:
    runs: list[float] = []

    async def flaky() -> None:
        runs.append(anyio.current_time())
        if len(runs) < 3:
            raise RuntimeError("boom")

    with anyio.fail_after(10):  # a hang guard, not a timing check
        await supervise("flaky", flaky, first_delay=0.01, max_delay=1.0)
    assert len(runs) == 3
    # the second wait is about twice the first
    assert runs[2] - runs[1] >= runs[1] - runs[0]


async def test_supervise_lets_cancellation_through() -> None:
    started = anyio.Event()

    async def forever() -> None:
        started.set()
        await anyio.sleep_forever()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(supervise, "forever", forever)
            await started.wait()
            tg.cancel_scope.cancel()


async def test_a_discovery_crash_at_start_is_retried_and_the_runtime_stays_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    retried = anyio.Event()

    async def discover(store: object, systems: object, **_: object) -> DiscoveryReport:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("discovery blew up at start")
        retried.set()
        return DiscoveryReport()

    monkeypatch.setattr(runtime_module, "discover", discover)
    settings = Settings(
        var_dir=tmp_path,
        policies_dir=ROOT / "policies",
        profile="sandbox",
        dispatcher=False,
        discovery_interval=0,
    )
    with anyio.fail_after(30):
        async with open_runtime(settings) as runtime:
            await retried.wait()
            assert runtime.ready
            async with runtime.store.reader() as reader:
                assert await reader.get_operation("op_nope") is None
    assert calls == 2
