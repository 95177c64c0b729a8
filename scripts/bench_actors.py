"""Measure what going through a system actor costs per ask, against a direct call.

Starts a tiny HTTP endpoint in a subprocess on a free loopback port, then in one run and
over one aiohttp session (one connector):

- latency: the same GET made directly (``connector.handle``) and through a
  ``SystemActor`` (``actor.ask``), interleaved so both see the same conditions; prints
  p50 and p99 of each, of the per-pair overhead, and the ratio;
- the actor's own cost with an upstream that answers at once (no HTTP);
- throughput: asks per second through one actor with 32 concurrent callers.

    .venv/bin/python scripts/bench_actors.py [--requests 3000] [--seconds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from types import TracebackType

import anyio

from actors import SystemActor
from actors.connector import Endpoint, HttpConnector
from actors.messages import GetCustomers, Message, Priority
from gateway.canonical import System
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


async def latency(connector: HttpConnector, actor: SystemActor, n: int) -> None:
    direct: list[float] = []
    through: list[float] = []
    for i in range(n + 200):
        # distinct messages: nothing is coalesced or cached on the way to the answer
        a, b = GetCustomers((f"d{i}",)), GetCustomers((f"a{i}",))
        t0 = time.perf_counter()
        await connector.handle(a)
        t1 = time.perf_counter()
        await actor.ask(b, priority=Priority.INTERACTIVE)
        t2 = time.perf_counter()
        if i >= 200:  # warm-up: connection pool, caches
            direct.append(t1 - t0)
            through.append(t2 - t1)
    overhead = [t - d for t, d in zip(through, direct, strict=True)]
    print(f"latency, {n} sequential GETs each way over one aiohttp session:")
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


async def throughput(connector: HttpConnector, actor: SystemActor, seconds: float) -> None:
    async def run(call: str) -> float:
        done = 0
        stop = anyio.current_time() + seconds

        async def caller(k: int) -> None:
            nonlocal done
            i = 0
            while anyio.current_time() < stop:
                message = GetCustomers((f"{call}{k}-{i}",))
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


async def main(requests: int, seconds: float) -> None:
    server = subprocess.Popen(  # noqa: ASYNC220 - started once, before any timing
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(await anyio.to_thread.run_sync(server.stdout.readline))
        url = f"http://127.0.0.1:{port}"
        print(f"endpoint {url}/customers (aiohttp, separate process)\n")
        connector = BenchConnector(Endpoint(base_url=url, max_connections=64))
        actor = SystemActor(connector, bench_policy(url))
        # the actor opens the connector: direct calls below use the very same session
        async with actor:
            await latency(connector, actor, requests)
            print()
            await throughput(connector, actor, seconds)
        print()
        await own_cost(requests * 3)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    anyio.run(main, args.requests, args.seconds)
