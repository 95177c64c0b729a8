"""`--bus` and `CROSSWALK_BUS` reach the gateway `crosswalk serve` starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.settings import Settings
from tests.servers import free_port
from tests.support.paths import ROOT


def serve(tmp_path: Path, *args: str) -> str:
    """``crosswalk serve`` that must fail to start; its exit code checked, its output."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "crosswalk", "serve", "--profile", "sandbox"),
            *("--port", str(free_port()), "--var-dir", str(tmp_path), *args),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    return done.stdout + done.stderr


@pytest.mark.slow
def test_a_bus_nobody_answers_stops_start_up_saying_where(tmp_path: Path) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    assert f"cannot reach the bus at {url}: no answer" in serve(tmp_path, "--bus", url)


def test_the_bus_comes_from_the_environment_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSWALK_BUS", "nats://bus.internal:4222")
    assert Settings().bus_url == "nats://bus.internal:4222"
    monkeypatch.delenv("CROSSWALK_BUS")
    assert Settings().bus_url == ""  # in-process
