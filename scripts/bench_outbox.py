"""The write path's throughput and end-to-end latency, against the sandbox systems.

    .venv/bin/python scripts/bench_outbox.py [--accept 2000] [--rate 100] [--seconds 5]

The four sandbox systems run in a child process (so their CPU is not the gateway's) with
10 ms latency per call and their built-in rate limits raised out of the way; the
gateway side runs here: the real actors and connectors (actor rate limits raised too:
the vendors' quotas would otherwise be what is measured), a SQLite store in a temporary
directory (WAL, synchronous=FULL), the write path and the dispatcher.

1. accepted mutations per second: ``--concurrency`` callers submit ``--accept``
   mutations through ``WritePath.submit`` (idempotency key, canonical validation with
   its reads through the actors, one transaction), the dispatcher off. Measured for
   ``onboardCustomer`` (validation needs no reads) and ``closeOpportunity`` (validation
   reads the CRM opportunity and the ERP customer: two 10 ms calls).
2. completion latency: ``closeOpportunity`` submitted at a fixed ``--rate`` per second for
   ``--seconds``, the dispatcher on; for each, the time from the request to its last
   step done (ERP order, subscription(s), entitlement, CRM stamp: 4-5 calls of 10 ms
   each, one after the other), as p50/p99.

Prints one line per figure, with the process CPU time per mutation.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actors import Systems  # noqa: E402
from gateway.canonical import System  # noqa: E402
from gateway.governance.reference import load_reference  # noqa: E402
from gateway.governance.systems import ENV_URLS, load_systems_policy  # noqa: E402
from gateway.processes.commands import WritePath  # noqa: E402
from gateway.processes.context import Caller  # noqa: E402
from gateway.processes.discovery import discover  # noqa: E402
from gateway.processes.dispatcher import Dispatcher  # noqa: E402
from gateway.processes.policy import DispatchPolicy  # noqa: E402
from gateway.store import MessageStatus, OperationStatus, Store, open_store  # noqa: E402
from sandbox.demo import generate  # noqa: E402

WIDGET = Caller("bench", "crm")
SYSTEMS = ("erp", "billing", "crm", "support")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ---------------------------------------------------------------- the sandbox child


def serve_sandboxes(data_dir: Path, customers: int, ports: dict[str, int]) -> None:
    """Run the four sandbox apps on ``ports`` until killed (the child process)."""
    import uvicorn

    from sandbox import billing, crm, erp, support
    from sandbox.app import SandboxConfig

    factories = {
        "erp": lambda c: erp.create_app(c, rate=100_000.0, burst=100_000),
        "billing": lambda c: billing.create_app(c, rate_per_second=100_000.0, rate_burst=100_000.0),
        "crm": lambda c: crm.create_app(
            c, per_second=100_000.0, burst=100_000, daily_limit=10_000_000
        ),
        "support": lambda c: support.create_app(c, rate_limit=10_000_000),
    }

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for system, factory in factories.items():
                config = SandboxConfig.for_system(
                    system,
                    port=ports[system],
                    data_dir=data_dir,
                    gateway_url=None,
                    customers=customers,
                    fresh=True,
                )
                server = uvicorn.Server(
                    uvicorn.Config(
                        factory(config), host="127.0.0.1", port=ports[system], log_level="warning"
                    )
                )
                tg.start_soon(server.serve)

    anyio.run(main)


# ---------------------------------------------------------------- the gateway side


def _child_cpu(pid: int) -> float:
    """CPU seconds the sandbox child has used (user + system, from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _systems(urls: dict[str, str]) -> Systems:
    environ = {ENV_URLS[System(s)]: url for s, url in urls.items()}
    shipped = load_systems_policy(ROOT / "policies" / "systems.toml", environ=environ)
    policies = {
        system: dataclasses.replace(
            policy,
            rate=dataclasses.replace(policy.rate, per_second=5000.0, burst=5000),
            health_interval=0.0,
            workers=64,
        )
        for system, policy in shipped.systems.items()
    }
    return Systems(dataclasses.replace(shipped, systems=policies))


async def accept_phase(
    store: Store, write: WritePath, kind: str, inputs: list[dict[str, Any]], concurrency: int
) -> tuple[float, float]:
    queue = list(enumerate(inputs))
    label = f"{kind}-{time.perf_counter_ns()}"

    async def caller() -> None:
        while queue:
            n, data = queue.pop()
            await write.submit(
                kind, data, caller=WIDGET, idempotency_key=f"{label}-{n}", correlation_id=f"b{n}"
            )

    cpu, wall = time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(caller)
    return time.perf_counter() - wall, time.process_time() - cpu


async def latency_phase(
    store: Store, write: WritePath, inputs: list[dict[str, Any]], rate: float
) -> tuple[list[float], float, int]:
    latencies: list[float] = []
    failed = 0

    async def one(n: int, data: dict[str, Any]) -> None:
        nonlocal failed
        started = time.perf_counter()
        view = await write.submit(
            "closeOpportunity",
            data,
            caller=WIDGET,
            idempotency_key=f"lat-{n}",
            correlation_id=f"l{n}",
        )
        with anyio.fail_after(60):
            async with store.watch_operation(view.id) as watch:
                current = await store.get_operation(view.id)
                assert current is not None
                while not (
                    current.status.terminal or current.status is OperationStatus.NEEDS_ATTENTION
                ):
                    current = await watch.__anext__()
        if current.status is OperationStatus.SUCCEEDED:
            latencies.append(time.perf_counter() - started)
        else:
            failed += 1

    cpu = time.process_time()
    async with anyio.create_task_group() as tg:
        start = anyio.current_time()
        for n, data in enumerate(inputs):
            await anyio.sleep_until(start + n / rate)
            tg.start_soon(one, n, data)
    return latencies, time.process_time() - cpu, failed


async def bench(
    args: argparse.Namespace, urls: dict[str, str], demo: Any, tmp: Path, child: int
) -> None:
    async with httpx.AsyncClient() as http:
        for url in urls.values():
            answer = await http.put(
                f"{url}/_sandbox/chaos", json={"latency_ms": [args.latency, args.latency]}
            )
            answer.raise_for_status()
    reference = load_reference(ROOT / "policies" / "reference.toml")
    opportunities = [
        {"opportunityId": opp.id}
        for company in demo.companies
        if company.in_support
        for opp in company.opportunities
        if not opp.is_closed
    ]
    onboard = [
        {"name": f"Bench {n} GmbH", "taxId": f"DE{n:09d}", "country": "DE", "paymentTerms": "NT30"}
        for n in range(args.accept)
    ]
    latency_count = int(args.rate * args.seconds)
    need = args.accept + latency_count
    if len(opportunities) < need:
        raise SystemExit(f"only {len(opportunities)} open opportunities; raise --customers")
    policy = DispatchPolicy(workers=64, poll_interval=0.2)

    def line(label: str, n: int, wall: float, cpu: float, child_cpu: float, note: str) -> None:
        print(
            f"{label:<28} {n / wall:7.0f}/s  {n} in {wall:5.2f} s  "
            f"gateway CPU {cpu / n * 1000:5.2f} ms  "
            f"sandbox CPU {child_cpu / n * 1000:5.2f} ms  {note}"
        )

    async with (
        await _systems(urls) as systems,
        open_store(f"sqlite:///{(args.store_dir or tmp) / 'gateway.db'}") as store,
        anyio.create_task_group() as tg,
    ):
        report = await discover(store, systems)  # as the gateway does at start
        print(f"cross-reference registry filled by discovery: {report}")
        write = WritePath(store, systems, reference)
        await accept_phase(store, write, "onboardCustomer", onboard[:50], args.concurrency)
        for kind, inputs, note in (
            ("onboardCustomer", onboard[50:], "(no validation reads)"),
            (
                "closeOpportunity",
                opportunities[: args.accept],
                f"(2 validation reads of {args.latency:g} ms)",
            ),
        ):
            child_before = _child_cpu(child)
            wall, cpu = await accept_phase(store, write, kind, inputs, args.concurrency)
            line(f"accepted {kind}", len(inputs), wall, cpu, _child_cpu(child) - child_before, note)
        dispatcher = Dispatcher(store, systems, policy=policy)
        await tg.start(dispatcher.run)
        # let the accepted backlog drain before measuring latency at a steady rate
        with anyio.fail_after(600):
            for _ in range(1200):  # a poll, bounded: the outbox has no "drained" event
                status = await store.outbox_status()
                if not status.total(MessageStatus.PENDING) + status.total(MessageStatus.LEASED):
                    break
                await anyio.sleep(0.5)
        inputs = opportunities[args.accept : args.accept + latency_count]
        child_before = _child_cpu(child)
        latencies, cpu, failed = await latency_phase(store, write, inputs, args.rate)
        child_cpu = _child_cpu(child) - child_before
        dispatcher.stop()
        ms = [x * 1000 for x in latencies]
        print(
            f"completion at {args.rate:g}/s: p50 {_percentile(ms, 0.5):.1f} ms  "
            f"p99 {_percentile(ms, 0.99):.1f} ms  max {max(ms):.1f} ms  "
            f"({len(ms)} done, {failed} not; gateway CPU {cpu / len(inputs) * 1000:.2f} ms, "
            f"sandbox CPU {child_cpu / len(inputs) * 1000:.2f} ms per mutation; "
            f"request -> validation -> 4-5 steps of {args.latency:g} ms)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accept", type=int, default=2000, help="mutations per acceptance phase")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=100.0, help="mutations per second (latency)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--latency", type=float, default=10.0, help="sandbox latency per call, ms")
    parser.add_argument("--customers", type=int, default=0, help="demo customers (default: enough)")
    parser.add_argument(
        "--store-dir", type=Path, default=None, help="folder for the store (default: a temp dir)"
    )
    parser.add_argument("--serve-sandboxes", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sandboxes:
        data_dir, customers, *ports = args.serve_sandboxes.split(",")
        serve_sandboxes(
            Path(data_dir), int(customers), dict(zip(SYSTEMS, map(int, ports), strict=True))
        )
        return
    need = args.accept + int(args.rate * args.seconds)
    customers = args.customers or int(need * 1.45) + 50
    ports = {s: _free_port() for s in SYSTEMS}
    urls = {s: f"http://127.0.0.1:{p}" for s, p in ports.items()}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        spec = ",".join([str(tmp / "sandbox"), str(customers), *(str(ports[s]) for s in SYSTEMS)])
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve-sandboxes", spec],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            deadline = time.monotonic() + 300
            for url in urls.values():
                while True:
                    try:
                        if httpx.get(f"{url}/_sandbox/chaos", timeout=2).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline or child.poll() is not None:
                        raise SystemExit("the sandbox systems did not start")
                    time.sleep(0.2)
            print(
                f"sandbox: {customers} customers, {args.latency:g} ms per call; "
                "store: SQLite (WAL, synchronous=FULL)"
            )
            anyio.run(bench, args, urls, generate(customers), tmp, child.pid)
        finally:
            child.terminate()
            child.wait(timeout=30)


if __name__ == "__main__":
    main()
