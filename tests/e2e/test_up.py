"""`crosswalk up` as a user runs it: five processes start, answer, and stop on a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port
from tests.support.paths import ROOT

pytestmark = pytest.mark.slow


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc), so the test can prove none is left."""
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == parent and int(entry.name) not in found:
                found.add(int(entry.name))
                frontier.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_up_starts_answers_and_stops_cleanly(tmp_path: Path, stop_signal: signal.Signals) -> None:
    ports = {name: free_port() for name in ("gw", "erp", "billing", "crm", "support")}
    cmd = [
        sys.executable, "-m", "crosswalk", "up",
        "--port", str(ports["gw"]),
        "--var-dir", str(tmp_path / "var"),
        "--customers", "20",
        *(f"--{s}-port={ports[s]}" for s in ("erp", "billing", "crm", "support")),
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    output: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            if "Press Ctrl-C to stop." in line:
                break
        text = "".join(output)
        assert "Crosswalk is up." in text, text
        assert "demo-portal-key" in text
        # the sandbox profile says loudly, before anything starts, that it uses demo secrets
        assert text.index("SANDBOX PROFILE") < text.index("Crosswalk is up.")
        assert "DEMO SECRETS" in text
        # /readyz's details and /metrics are for ops
        base = f"http://127.0.0.1:{ports['gw']}"
        _wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 200, 30, "readyz")
        assert httpx.get(f"{base}/metrics").status_code == 401
        ops = {"Authorization": "Bearer demo-ops-key"}
        assert "crosswalk_" in httpx.get(f"{base}/metrics", headers=ops).text
        assert "systems" in httpx.get(f"{base}/readyz", headers=ops).json()
        children = _children(proc.pid)
        assert len(children) >= 5, children

        base = f"http://127.0.0.1:{ports['gw']}"
        assert httpx.get(f"{base}/healthz").status_code == 200
        _wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 200, 30, "readyz")
        answer = httpx.post(
            f"{base}/graphql",
            json={"query": "{ systems { system breaker } }"},
            headers={"Authorization": "Bearer demo-ops-key"},
        )
        assert answer.status_code == 200, answer.text
        names = {s["system"].lower() for s in answer.json()["data"]["systems"]}
        assert names == {"erp", "billing", "crm", "support"}
        erp = httpx.get(
            f"http://127.0.0.1:{ports['erp']}/sap/opu/odata/sap/API_BUSINESS_PARTNER/"
            "A_BusinessPartner('1000000')?$format=json",
            auth=("sandbox", "sandbox"),
        )
        assert erp.status_code == 200
        assert erp.json()["d"]["BusinessPartner"] == "1000000"
        assert (tmp_path / "var" / "sandbox" / "drift-manifest.json").exists()

        proc.send_signal(stop_signal)
        proc.wait(timeout=30)
        assert proc.returncode == 0, "".join(output) + (proc.stdout.read() or "")
        _wait_for(lambda: not any(_alive(pid) for pid in children), 10, "children to exit")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in _children(proc.pid):
            os.kill(pid, signal.SIGKILL)
        if proc.stdout is not None:
            proc.stdout.close()
