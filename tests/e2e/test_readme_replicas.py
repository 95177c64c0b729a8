"""The README's two replicas, run as written (ports, state folder, database name and stream
prefix moved aside): a mutation accepted by one replica is seen completing by a
subscription held on the other, over NATS JetStream, both on one PostgreSQL store."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from websockets.sync.client import connect

from tests.bus.nats_server import delete_streams, nats_prefix_name, require_nats
from tests.e2e.test_readme import README, readme_commands
from tests.servers import free_port
from tests.support.paths import POLICIES, ROOT

pytestmark = [pytest.mark.slow]

SYSTEMS = ("erp", "billing", "crm", "support")
WIDGET = {"Authorization": "Bearer demo-widget-key"}


def section_commands() -> list[str]:
    text = README.read_text()
    start = text.index("## Beyond one machine")
    end = text.find("\n## ", start + 1)
    return readme_commands(text[start : end if end > 0 else None])


@contextmanager
def started(commands: list[str], env: dict[str, str], logs: Path) -> Iterator[None]:
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for i, command in enumerate(commands):
            with (logs / f"{i}.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        ["bash", "-c", f"exec {command}"],
                        cwd=ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        yield
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def database_dropped(name: str) -> Iterator[None]:
    try:
        yield
    finally:
        subprocess.run(
            ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--force", "--if-exists", name],
            check=True,
            timeout=30,
        )


@contextmanager
def streams_deleted(prefix: str) -> Iterator[None]:
    try:
        yield
    finally:
        anyio.run(delete_streams, prefix)


def ready(url: str, logs: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail(f"{url} never ready: " + " | ".join(p.read_text()[-800:] for p in logs.iterdir()))


def test_the_readme_replicas_see_each_other(tmp_path: Path) -> None:
    require_nats()
    commands = section_commands()
    assert commands[0] == "nats-server -js &"  # CI runs it already: the test needs it
    gateways = {"8000": free_port(), "8001": free_port()}
    prefix = nats_prefix_name()
    database = f"cw_readme_{secrets.token_hex(4)}"
    assert commands[1] == "createdb -h 127.0.0.1 -U postgres crosswalk", commands[1]
    createdb = commands[1].replace(" crosswalk", f" {database}")
    rewritten = []
    for command in commands[2:]:
        assert command.endswith("&"), command
        command = command.removesuffix("&").strip()
        command = re.sub(r"--port (\d+)", lambda m: f"--port {gateways[m.group(1)]}", command)
        command = command.replace(
            "nats://127.0.0.1:4222", f"'nats://127.0.0.1:4222?prefix={prefix}'"
        )
        command = command.replace("5432/crosswalk", f"5432/{database}")
        rewritten.append(command)
    assert sum(f"5432/{database}" in c for c in rewritten) == 2
    assert sum("--bus nats://" in c or "--bus 'nats://" in c for c in rewritten) == 2
    ports = {s: free_port() for s in SYSTEMS}
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "CROSSWALK_VAR": str(tmp_path / "var"),
        "CROSSWALK_POLICIES": str(POLICIES),
        "CROSSWALK_GATEWAY_URL": f"http://127.0.0.1:{gateways['8000']}",
        **{f"CROSSWALK_SANDBOX_{s.upper()}_PORT": str(p) for s, p in ports.items()},
        **{f"CROSSWALK_{s.upper()}_URL": f"http://127.0.0.1:{p}" for s, p in ports.items()},
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    a, b = (f"http://127.0.0.1:{gateways[p]}" for p in ("8000", "8001"))
    subprocess.run(["bash", "-c", createdb], check=True, timeout=30)
    with (
        database_dropped(database),
        streams_deleted(prefix),
        started(rewritten, env, logs),
    ):
        ready(a, logs)
        ready(b, logs)
        mutation = {
            "query": "mutation($key: String!) { onboardCustomer(input: {name: "
            '"Replica Rockets GmbH", taxId: "DE276452187", country: "DE", paymentTerms: '
            '"NT30", email: "ap@replica.example.com"}, idempotencyKey: $key) { id } }',
            "variables": {"key": f"replicas-{secrets.token_hex(4)}"},
        }
        answer = httpx.post(f"{a}/graphql", json=mutation, headers=WIDGET, timeout=30)
        operation = answer.json()["data"]["onboardCustomer"]["id"]
        statuses = []
        with connect(
            b.replace("http", "ws", 1) + "/graphql",
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            open_timeout=10,
        ) as ws:
            ws.send(json.dumps({"type": "connection_init", "payload": WIDGET}))
            assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
            query = "subscription($id: ID!) { operation(id: $id) { status } }"
            payload = {"query": query, "variables": {"id": operation}}
            ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            while True:
                message = json.loads(ws.recv(timeout=60))
                if message["type"] != "next":
                    break
                statuses.append(message["payload"]["data"]["operation"]["status"])
    assert statuses[-1] == "SUCCEEDED", statuses
