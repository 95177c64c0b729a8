"""`crosswalk up` as a real process on free ports, for tests that use the whole stack.

    with running_up(tmp_path) as stack:
        stack.base          # http://127.0.0.1:<gateway port>
        stack.ports["erp"]  # the sandbox systems' ports
        stack.output        # what it printed up to "Press Ctrl-C to stop."

``env`` adds environment variables (``CROSSWALK_POLICIES`` for another policy folder).

Leaving the block sends SIGINT and waits for the stack to stop (SIGKILL after 30 s).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.servers import free_port
from tests.support.paths import ROOT
from tests.support.processes import stop_process

SYSTEMS = ("erp", "billing", "crm", "support")


@dataclass
class UpStack:
    base: str
    ports: dict[str, int]
    output: str
    var_dir: Path
    #: everything the stack printed, appended as it runs
    log: Path


def wait_linked(stack: UpStack, customer: str, systems: tuple[str, ...]) -> None:
    """Until discovery has linked ``customer`` in every one of ``systems``: ``/readyz`` does
    not wait for discovery, and a customer 360 reads a system only for a linked customer."""
    fields = " ".join(systems)
    query = f'{{ customer(id: "{customer}") {{ identity {{ {fields} }} }} }}'
    headers = {"Authorization": "Bearer demo-portal-key"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = httpx.post(f"{stack.base}/graphql", json={"query": query}, headers=headers).json()
        identity = ((body.get("data") or {}).get("customer") or {}).get("identity") or {}
        if all(identity.get(system) for system in systems):
            return
        time.sleep(0.2)
    raise AssertionError(f"{customer} was never linked in all of {systems}")


@contextmanager
def running_up(
    tmp_path: Path, *, customers: int = 20, env: Mapping[str, str] | None = None
) -> Iterator[UpStack]:
    ports = {name: free_port() for name in ("gw", *SYSTEMS)}
    var_dir = tmp_path / "var"
    cmd = [
        sys.executable, "-m", "crosswalk", "up",
        "--port", str(ports["gw"]),
        "--var-dir", str(var_dir),
        "--customers", str(customers),
        *(f"--{s}-port={ports[s]}" for s in SYSTEMS),
    ]  # fmt: skip
    log_path = tmp_path / "up.log"
    log = log_path.open("w")
    # output goes to a file, not a pipe nobody drains once the stack is up
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if "Press Ctrl-C to stop." in log_path.read_text():
                break
            time.sleep(0.1)
        output = log_path.read_text()
        assert "Crosswalk is up." in output, output
        base = f"http://127.0.0.1:{ports['gw']}"
        deadline = time.monotonic() + 30
        while httpx.get(f"{base}/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the gateway never became ready"
            time.sleep(0.1)
        yield UpStack(base=base, ports=ports, output=output, var_dir=var_dir, log=log_path)
    finally:
        stop_process(proc, signal.SIGINT, within=30)
        log.close()
