"""The NATS servers the bus tests use.

The shared one at 127.0.0.1:4222 (CI starts it; a test fails, never skips, without it):
each test gets streams under a prefix of its own, deleted afterwards. ``private_server``
runs a JetStream server of the test's own on a free port, to stop and start again.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import anyio
import nats
import pytest

from tests.servers import free_port

NATS_URL = "nats://127.0.0.1:4222"


def require_nats(host: str = "127.0.0.1", port: int = 4222) -> None:
    try:
        with socket.create_connection((host, port), timeout=2):
            pass
    except OSError as exc:
        pytest.fail(
            f"NATS JetStream is not reachable at {host}:{port} ({exc}); start it with "
            "`nats-server -js` (CI and .ci/run do) — the bus tests need the real server"
        )


def nats_prefix_name() -> str:
    """A stream prefix no other test uses."""
    return f"cwtest-{secrets.token_hex(4)}"


@asynccontextmanager
async def nats_prefix() -> AsyncIterator[str]:
    """A fresh stream prefix on the shared server; its streams are deleted afterwards."""
    require_nats()
    prefix = nats_prefix_name()
    try:
        yield prefix
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await delete_streams(prefix)


async def delete_streams(prefix: str) -> None:
    """Delete the streams a bus with ``prefix`` made on the shared server (and the
    replicas' membership bucket)."""
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        for first in ("events", "operations"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(f"{prefix}_{first}".upper().replace("-", "_"))
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_key_value(f"{prefix}_replicas")
    finally:
        await nc.close()


class PrivateServer:
    """``nats-server -js`` on a free port with its own store folder; stop and start it."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("nats-server")
        if binary is None:
            pytest.fail("nats-server is not on PATH: the bus restart test runs one of its own")
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def started(self) -> None:
        with anyio.fail_after(10):
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                        return
                except OSError:
                    await anyio.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@contextmanager
def private_server(folder: Path) -> Iterator[PrivateServer]:
    server = PrivateServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
