"""Measure what going through a system actor costs per ask, against a direct call.

Starts the ERP sandbox system (``--target sandbox``, the default when ``sandbox.erp`` and
``actors.erp`` exist; its own throttle lifted) or a tiny aiohttp endpoint (``--target
tiny``) in a subprocess on a free loopback port, then in one run and over one aiohttp
session (one connector):

- latency: the same GET made directly (``connector.handle``) and through a
  ``SystemActor`` (``actor.ask``), interleaved so both see the same conditions; prints
  p50 and p99 of each, of the per-pair overhead, and the ratio;
- the actor's own cost with an upstream that answers at once (no HTTP);
- throughput: asks per second through one actor with 32 concurrent callers.

    .venv/bin/python scripts/bench_actors.py [--target sandbox|tiny] [--requests 3000]
                                             [--seconds 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import TracebackType

import anyio

from actors import SystemActor
from actors.connector import Connector, Endpoint, HttpConnector
from actors.errors import CrosswalkSystemError
from actors.messages import GetCustomers, Message, Priority
from canonical import System
from gateway.governance.systems import RatePolicy, RetryPolicy, SystemPolicy

SERVER = r"""
import asyncio
import sys
from aiohttp import web

async def customers(request):
    ids = request.query.get("ids", "")
    return web.json_response({i: {"id": i, "name": "Acme"} for i in ids.split(",") if i})

async def main():
    app = web.Application()
    app.router.add_get("/customers", customers)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    # run until the parent closes our stdin
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


def serve_sandbox(data_dir: str, port: int) -> None:
    """Child process: the ERP sandbox under uvicorn, its throttle lifted."""
    import uvicorn

    from sandbox.app import SandboxConfig
    from sandbox.erp import create_app

    config = SandboxConfig.for_system(
        "erp", port=port, data_dir=Path(data_dir), gateway_url=None, customers=50
    )
    app = create_app(config, rate=1e6, burst=1_000_000)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class BenchConnector(HttpConnector):
    system = System.ERP

    async def handle(self, message: Message) -> object:
        assert isinstance(message, GetCustomers)
        response = await self.request("GET", "/customers", params={"ids": ",".join(message.ids)})
        return self.decode(response)

    async def _ping(self) -> None:
        await self.request("GET", "/customers")


class InstantConnector:
    """Answers at once: what is left is the actor's own cost."""

    system = System.ERP

    async def __aenter__(self) -> InstantConnector:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def handle(self, message: Message) -> object:
        return message

    async def ping(self) -> float:
        return 0.0


def bench_policy(url: str) -> SystemPolicy:
    return SystemPolicy(
        system=System.ERP,
        base_url=url,
        workers=32,
        mailbox=10_000,
        health_interval=0,
        # the limiter stays in the path but never makes anyone wait
        rate=RatePolicy(per_second=1_000_000, burst=1_000_000),
        retry=RetryPolicy(attempts=1, base=0.01, cap=0.1),
    )


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.3f} ms"


MessageFor = Callable[[str, int], Message]


async def latency(
    connector: Connector, actor: SystemActor, n: int, message_for: MessageFor
) -> None:
    direct: list[float] = []
    through: list[float] = []
    for i in range(n + 200):
        # distinct messages: nothing is coalesced on the way to the answer
        a, b = message_for("d", i), message_for("a", i)
        t0 = time.perf_counter()
        await connector.handle(a)
        t1 = time.perf_counter()
        await actor.ask(b, priority=Priority.INTERACTIVE)
        t2 = time.perf_counter()
        if i >= 200:  # warm-up: connection pool, caches
            direct.append(t1 - t0)
            through.append(t2 - t1)
    overhead = [t - d for t, d in zip(through, direct, strict=True)]
    print(f"latency, {n} sequential calls each way over one aiohttp session:")
    print(f"  direct       p50 {ms(pct(direct, 0.5))}   p99 {ms(pct(direct, 0.99))}")
    print(f"  via actor    p50 {ms(pct(through, 0.5))}   p99 {ms(pct(through, 0.99))}")
    print(
        f"  overhead     p50 {ms(pct(overhead, 0.5))}   p99 {ms(pct(overhead, 0.99))}"
        f"   (p50 of via-actor minus p50 of direct: "
        f"{ms(pct(through, 0.5) - pct(direct, 0.5)).strip()})"
    )
    print(f"  ratio        p50 {statistics.median(through) / statistics.median(direct):.3f}x")


async def own_cost(n: int) -> None:
    policy = replace(bench_policy("http://127.0.0.1:9"), workers=1)
    async with SystemActor(InstantConnector(), policy) as actor:
        samples: list[float] = []
        for i in range(n + 500):
            t0 = time.perf_counter()
            await actor.ask(GetCustomers((str(i),)), priority=Priority.INTERACTIVE)
            if i >= 500:
                samples.append(time.perf_counter() - t0)
    print("actor's own cost per ask (upstream answers at once, no HTTP):")
    print(f"  p50 {ms(pct(samples, 0.5))}   p99 {ms(pct(samples, 0.99))}")


async def throughput(
    connector: Connector, actor: SystemActor, seconds: float, message_for: MessageFor
) -> None:
    async def run(call: str) -> float:
        done = 0
        stop = anyio.current_time() + seconds

        async def caller(k: int) -> None:
            nonlocal done
            i = 0
            while anyio.current_time() < stop:
                message = message_for(f"{call}{k}-", i)
                if call == "actor":
                    await actor.ask(message, priority=Priority.INTERACTIVE)
                else:
                    await connector.handle(message)
                done += 1
                i += 1

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for k in range(32):
                tg.start_soon(caller, k)
        return done / (time.perf_counter() - started)

    direct = await run("direct")
    via = await run("actor")
    print(f"throughput, 32 concurrent callers for {seconds:.0f} s each:")
    print(f"  direct       {direct:8.0f} requests/s")
    print(f"  via actor    {via:8.0f} asks/s through one actor ({via / direct:.2f}x direct)")


async def start(target: str, tmp: str) -> tuple[subprocess.Popen[str], str]:
    """The endpoint's process and base URL, once it answers."""
    if target == "tiny":
        server = subprocess.Popen(  # noqa: ASYNC220 - started once, before any timing
            [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert server.stdout is not None
        port = int(await anyio.to_thread.run_sync(server.stdout.readline))
        return server, f"http://127.0.0.1:{port}"
    port = free_port()
    server = subprocess.Popen(  # noqa: ASYNC220 - started once, before any timing
        [sys.executable, __file__, "--serve-sandbox", tmp, str(port)],
        stdin=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    probe = sandbox_connector(url)
    async with probe:
        with anyio.fail_after(60):
            while True:
                try:
                    await probe.ping()
                    break
                except CrosswalkSystemError:
                    await anyio.sleep(0.1)
    return server, url


def sandbox_connector(url: str) -> Connector:
    from actors.erp import ErpConnector
    from gateway.governance.systems import load_systems_policy

    policy = load_systems_policy(ROOT / "policies" / "systems.toml", environ={})
    endpoint = replace(policy[System.ERP].endpoint(), base_url=url)
    connector: Connector = ErpConnector(endpoint)
    return connector


ROOT = Path(__file__).resolve().parents[1]


async def main(target: str, requests: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-actors-") as tmp:
        server, url = await start(target, tmp)
        try:
            if target == "tiny":
                print(f"endpoint {url}/customers (tiny aiohttp app, separate process)\n")
                connector: Connector = BenchConnector(Endpoint(base_url=url, max_connections=64))

                def message_for(tag: str, i: int) -> Message:
                    return GetCustomers((f"{tag}{i}",))
            else:
                print(f"endpoint {url} (ERP sandbox, separate process): GetCustomers of one")
                print("seeded BusinessPartner -> OData $filter read, canonical Customer\n")
                connector = sandbox_connector(url)

                def message_for(tag: str, i: int) -> Message:
                    # a real partner plus a tag-unique absent id: same work, never coalesced
                    return GetCustomers((str(1000000 + i % 50), f"9{abs(hash(tag)) % 10**6}{i}"))

            actor = SystemActor(connector, bench_policy(url))
            # the actor opens the connector: direct calls below use the very same session
            async with actor:
                await latency(connector, actor, requests, message_for)
                print()
                await throughput(connector, actor, seconds, message_for)
            print()
            await own_cost(requests * 3)
        finally:
            if server.stdin is not None:
                server.stdin.close()
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-sandbox":
        serve_sandbox(sys.argv[2], int(sys.argv[3]))
        sys.exit(0)
    has_sandbox = all(importlib.util.find_spec(m) for m in ("sandbox.erp", "actors.erp"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--target", choices=("sandbox", "tiny"), default="sandbox" if has_sandbox else "tiny"
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    anyio.run(main, args.target, args.requests, args.seconds)
