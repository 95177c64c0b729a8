"""Serve sandbox systems under uvicorn, several in one process, owned by one task group.

``serve_systems(configs, stop)`` starts one uvicorn server per config, reports readiness
through ``task_status`` once every one is accepting connections, and shuts them all down
gracefully when ``stop`` is set (or when cancelled, within a deadline).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import anyio
import uvicorn
from anyio.abc import TaskStatus
from starlette.applications import Starlette

from sandbox.app import SandboxConfig
from sandbox.demo import generate

__all__ = ["QuietServer", "create_system_app", "serve_systems", "write_manifest"]

#: how long a graceful shutdown may take before the servers are cancelled outright
SHUTDOWN_GRACE = 10.0


def create_system_app(config: SandboxConfig) -> Starlette:
    """The Starlette app of ``config.system`` (``sandbox.<system>.create_app``)."""
    module = importlib.import_module(f"sandbox.{config.system}")
    app: Starlette = module.create_app(config)
    return app


def write_manifest(config: SandboxConfig) -> None:
    """Write what the demo world planted as drift, for reconciliation to be checked against."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    manifest = generate(config.customers, config.seed).manifest()
    (config.data_dir / "drift-manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its owner."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _server(config: SandboxConfig) -> uvicorn.Server:
    server = QuietServer(
        uvicorn.Config(
            create_system_app(config),
            host=config.host,
            port=config.port,
            log_level="warning",
            lifespan="on",
            access_log=False,
            timeout_graceful_shutdown=int(SHUTDOWN_GRACE),
        )
    )
    return server


async def serve_systems(
    configs: Sequence[SandboxConfig],
    stop: anyio.Event,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    servers = [_server(config) for config in configs]
    async with anyio.create_task_group() as tg:
        for server in servers:
            tg.start_soon(server.serve)
        with anyio.fail_after(30):
            # uvicorn has no "started" event to wait on; it flips this flag once listening
            while not all(server.started for server in servers):
                if any(server.should_exit for server in servers):
                    raise RuntimeError("a sandbox system failed to start (port taken?)")
                await anyio.sleep(0.02)
        task_status.started()
        try:
            await stop.wait()
        finally:
            # each server drains its connections and returns; the task group waits for them
            for server in servers:
                server.should_exit = True
