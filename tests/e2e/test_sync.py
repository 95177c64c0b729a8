"""`crosswalk sync` against the sandbox systems as real processes: killed midway, run
again, it ends with every record once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port
from tests.support.paths import ROOT
from tests.support.processes import stop_process
from tests.support.upstack import SYSTEMS

pytestmark = [pytest.mark.slow]

STRIPE = {"Authorization": "Bearer sk_test_crosswalk"}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    ports = {system: free_port() for system in SYSTEMS}
    data = tmp_path_factory.mktemp("sync-sandbox")
    cmd = [
        sys.executable, "-m", "crosswalk", "sandbox", "--no-webhooks",
        "--data-dir", str(data), "--customers", "120",
        *(f"--{s}-port={ports[s]}" for s in SYSTEMS),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        for system in SYSTEMS:
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{ports[system]}/_sandbox/stats")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, f"{system} sandbox never started"
                    time.sleep(0.1)
        yield ports
    finally:
        stop_process(proc, signal.SIGINT, within=30)


def sync_command(ports: dict[str, int], var: Path) -> list[str]:
    return [
        sys.executable, "-m", "crosswalk", "sync", "--profile", "sandbox",
        "--var-dir", str(var),
        *(f"--{s}-url=http://127.0.0.1:{ports[s]}" for s in SYSTEMS),
    ]  # fmt: skip


def invoices_in_billing(port: int) -> set[str]:
    ids: set[str] = set()
    params: dict[str, str | int] = {"limit": 100}
    while True:
        page = httpx.get(
            f"http://127.0.0.1:{port}/v1/invoices", params=params, headers=STRIPE
        ).json()
        ids.update(doc["id"] for doc in page["data"])
        if not page["has_more"]:
            return ids
        params["starting_after"] = page["data"][-1]["id"]


def test_a_sync_killed_midway_resumes_and_ends_with_every_record_once(
    sandbox: dict[str, int], tmp_path: Path
) -> None:
    var = tmp_path / "var"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "first.log"
    with log.open("w") as out:
        first = subprocess.Popen(sync_command(sandbox, var), cwd=ROOT, stderr=out, env=env)
        deadline = time.monotonic() + 60
        # killed once the ERP is done and billing is being listed
        while "erp:" not in log.read_text():
            assert first.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait()
    with sqlite3.connect(var / "crosswalk.db") as db:
        feeds = {
            (system, feed): complete
            for system, feed, complete in db.execute(
                "SELECT system, feed, complete_at FROM read_feeds"
            )
        }
    assert all(feeds.get(("erp", f)) for f in ("customers", "orders", "billing_documents"))
    # killed before billing finished: the second run has work left
    billing = [
        feeds.get(("billing", f)) for f in ("events", "customers", "invoices", "subscriptions")
    ]
    assert not all(billing), feeds
    second = subprocess.run(
        sync_command(sandbox, var), cwd=ROOT, capture_output=True, text=True, env=env, timeout=120
    )
    assert second.returncode == 0, second.stderr
    for system in SYSTEMS:
        assert f"{system}: " in second.stderr
        assert "loaded" in second.stderr.split(f"{system}: ", 1)[1].splitlines()[0]
    db = sqlite3.connect(var / "crosswalk.db")
    rows = db.execute(
        "SELECT id FROM read_records WHERE system = 'billing' AND kind = 'invoice'"
    ).fetchall()
    held = [row[0] for row in rows]
    assert len(held) == len(set(held))
    assert set(held) == invoices_in_billing(sandbox["billing"])
    for system in SYSTEMS:
        count = db.execute(
            "SELECT count(*) FROM read_records WHERE system = ?", (system,)
        ).fetchone()[0]
        assert count > 0, system
