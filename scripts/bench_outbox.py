"""The write path's throughput and end-to-end latency, against the sandbox systems.

(Longer than 500 lines on purpose: one benchmark that reads top to bottom, and one file
because it starts its own sandbox children by running itself with ``--serve-sandbox``.)

    .venv/bin/python scripts/bench_outbox.py [--accept 2000] [--rate 100] [--seconds 5]
        [--store postgresql://postgres@127.0.0.1:5432/bench]

The four sandbox systems run in four child processes (their CPU is not the gateway's) with
10 ms latency per call and their built-in rate limits raised out of the way; the
gateway side runs here: the real actors and connectors (actor rate limits raised too:
the vendors' quotas would otherwise be what is measured), a SQLite store in a temporary
directory (WAL, synchronous=FULL) or the store at ``--store`` (a URL as ``crosswalk serve
--store`` takes it; point it at an empty database: it is not emptied), the write path and
the dispatcher.

1. completion latency: ``closeOpportunity`` submitted at each fixed ``--rate`` per second
   (default 20 and 100) for ``--seconds``, the dispatcher on; for each, the time from the
   request to its last step done (validation reads, then ERP order, subscription(s),
   entitlement, CRM stamp, each a call of 10 ms or more, one after the other), as
   p50/p99, and the median time at which each step was done.
2. accepted mutations per second: ``--concurrency`` callers submit ``--accept``
   onboardCustomer and ``--accept-close`` closeOpportunity mutations through
   ``WritePath.submit`` (idempotency key, canonical validation with its reads through the
   actors, one transaction), the dispatcher off. Measured for
   ``onboardCustomer`` (validation needs no reads) and ``closeOpportunity`` (validation
   reads the CRM opportunity and the ERP customer: two 10 ms calls).

The cross-reference registry is filled by discovery first, as the gateway does at start.
Prints one line per figure, with the process CPU time per mutation, then per phase the
CPU milliseconds per mutation of each process (this one, the gateway with its load
generator, and each sandbox system, from ``/proc/<pid>/stat``) and the vendor calls per
mutation by route (from each sandbox's ``/_sandbox/stats``, ids grouped).
``--py-spy DIR`` records every process during each latency phase (raw stacks, for
flame graphs or counting).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actors import Systems  # noqa: E402
from actors.errors import CrosswalkSystemError  # noqa: E402
from canonical import System  # noqa: E402
from gateway.governance.outbox import load_outbox_policy  # noqa: E402
from gateway.governance.reference import load_reference  # noqa: E402
from gateway.governance.systems import ENV_URLS, load_systems_policy  # noqa: E402
from gateway.processes.context import Caller  # noqa: E402
from gateway.processes.discovery import discover  # noqa: E402
from gateway.processes.dispatcher import Dispatcher  # noqa: E402
from gateway.processes.errors import CommandError  # noqa: E402
from gateway.processes.write_path import WritePath  # noqa: E402
from gateway.store import OperationStatus, Store, open_store  # noqa: E402
from sandbox.demo import generate  # noqa: E402

WIDGET = Caller("bench", "crm")
SYSTEMS = ("erp", "billing", "crm", "support")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ---------------------------------------------------------------- the sandbox child


def serve_sandbox(system: str, data_dir: Path, customers: int, port: int, use_uvloop: bool) -> None:
    """Run one sandbox app on ``port`` until killed (a child process per system, so the
    four systems' CPU spreads over the machine's cores as separate services would)."""
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

    config = SandboxConfig.for_system(
        system, port=port, data_dir=data_dir, gateway_url=None, customers=customers, fresh=True
    )
    app = factories[system](config)
    loop = "uvloop" if use_uvloop else "asyncio"
    uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", loop=loop)
    ).run()


# ---------------------------------------------------------------- the gateway side


def _cpu_of(pid: int) -> float:
    """CPU seconds process ``pid`` has used (user + system, all threads, from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu(pids: list[int]) -> float:
    """CPU seconds the sandbox children have used (user + system, from /proc)."""
    return sum(_cpu_of(pid) for pid in pids)


def _route(key: str) -> str:
    """A route without its ids (``GET /sobjects/Opportunity/006...`` -> ``.../{id}``), so
    calls group by what they do."""
    method, _, path = key.partition(" ")
    parts = []
    for part in path.split("?")[0].split("/"):
        if any(ch.isdigit() for ch in part) and len(part) > 3:
            head, paren, _ = part.partition("(")
            part = f"{head}({{id}})" if paren else "{id}"
        parts.append(part)
    return f"{method} {'/'.join(parts)}"


async def _routes(http: httpx.AsyncClient, urls: dict[str, str]) -> dict[str, int]:
    """Calls each sandbox system received so far, by system and route (ids grouped)."""
    counts: dict[str, int] = {}
    for system, url in urls.items():
        answer = await http.get(f"{url}/_sandbox/stats")
        answer.raise_for_status()
        for key, n in answer.json()["by_route"].items():
            if "/_sandbox/" in key:
                continue
            route = f"{system} {_route(key)}"
            counts[route] = counts.get(route, 0) + n
    return counts


class Meter:
    """CPU per process (the gateway, here, and each sandbox child) and vendor calls by
    route, between ``start()`` and ``report(n)``: the cost of one mutation, per process."""

    def __init__(self, http: httpx.AsyncClient, urls: dict[str, str], children: dict[str, int]):
        self.http = http
        self.urls = urls
        self.pids = {"gateway": os.getpid(), **children}
        self._cpu: dict[str, float] = {}
        self._calls: dict[str, int] = {}

    async def start(self) -> None:
        self._calls = await _routes(self.http, self.urls)
        self._cpu = {name: _cpu_of(pid) for name, pid in self.pids.items()}

    async def report(self, n: int) -> None:
        cpu = {name: _cpu_of(pid) - self._cpu[name] for name, pid in self.pids.items()}
        calls = await _routes(self.http, self.urls)
        total = sum(cpu.values())
        print(
            f"  CPU ms per mutation: total {total / n * 1000:.1f} = "
            + ", ".join(f"{name} {value / n * 1000:.1f}" for name, value in cpu.items())
        )
        per = {route: calls[route] - self._calls.get(route, 0) for route in calls}
        per = {route: count for route, count in per.items() if count}
        print(
            f"  vendor calls per mutation: {sum(per.values()) / n:.2f} = "
            + ", ".join(f"{route} {count / n:.2f}" for route, count in sorted(per.items()))
        )


@contextlib.asynccontextmanager
async def _profiled(folder: Path | None, label: str, pids: dict[str, int]) -> AsyncIterator[None]:
    """Record each process with py-spy while the block runs (nothing if ``folder`` is None)."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).with_name("py-spy"))
    processes = [
        await anyio.open_process(
            [
                spy,
                "record",
                "--format",
                "raw",
                "--rate",
                "250",
                "--nonblocking",
                "--threads",
                "-o",
                str(folder / f"{label}-{name}.txt"),
                "-p",
                str(pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]
    try:
        yield
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        with anyio.move_on_after(30):
            for process in processes:
                await process.wait()


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
    store: Store, write: WritePath, kind: str, inputs: list[dict[str, Any]], rate: float
) -> tuple[list[float], float, int]:
    latencies: list[float] = []
    failed = 0
    step_times: dict[str, list[float]] = {}
    refusals: list[str] = []

    async def one(n: int, data: dict[str, Any]) -> None:
        nonlocal failed
        started = time.perf_counter()
        try:
            view = await write.submit(
                kind,
                data,
                caller=WIDGET,
                idempotency_key=f"lat-{kind}-{rate:g}-{n}",
                correlation_id=f"l{n}",
            )
        except (CommandError, CrosswalkSystemError) as exc:
            failed += 1
            refusals.append(f"{type(exc).__name__}: {exc}")
            return
        current = None
        with anyio.move_on_after(120):
            async with store.watch_operation(view.id) as watch:
                current = await store.get_operation(view.id)
                assert current is not None
                while not (
                    current.status.terminal or current.status is OperationStatus.NEEDS_ATTENTION
                ):
                    current = await watch.__anext__()
        if current is None or not current.status.terminal:
            failed += 1  # not done within 2 minutes
            return
        if current.status is OperationStatus.SUCCEEDED:
            latencies.append(time.perf_counter() - started)
            for step in await store.get_steps(view.id):
                if step.status.value == "SUCCEEDED":
                    offset = (step.updated_at - current.created_at).total_seconds()
                    step_times.setdefault(step.name, []).append(offset)
        else:
            failed += 1

    cpu = time.process_time()
    async with anyio.create_task_group() as tg:
        start = anyio.current_time()
        for n, data in enumerate(inputs):
            await anyio.sleep_until(start + n / rate)
            tg.start_soon(one, n, data)
    timeline = ", ".join(
        f"{name} +{_percentile(times, 0.5) * 1000:.0f}" for name, times in step_times.items()
    )
    print(f"  median ms after acceptance at which each step was done: {timeline}")
    if refusals:
        print(f"  {len(refusals)} refused at acceptance, e.g. {refusals[0][:160]}")
    return latencies, time.process_time() - cpu, failed


async def bench(
    args: argparse.Namespace,
    urls: dict[str, str],
    demo: Any,
    tmp: Path,
    pids: dict[str, int],
) -> None:
    async with httpx.AsyncClient() as http:
        await _bench(args, urls, demo, tmp, pids, http)


async def _bench(
    args: argparse.Namespace,
    urls: dict[str, str],
    demo: Any,
    tmp: Path,
    pids: dict[str, int],
    http: httpx.AsyncClient,
) -> None:
    children = list(pids.values())
    meter = Meter(http, urls, pids)
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
    rates = [float(r) for r in str(args.rate).split(",")]
    counts = [int(rate * args.seconds) for rate in rates]
    need = args.accept_close + sum(counts)
    if len(opportunities) < need:
        raise SystemExit(f"only {len(opportunities)} open opportunities; raise --customers")
    # the shipped dispatcher policy (workers, leases, backoff), as `crosswalk up` runs it
    policy = load_outbox_policy(ROOT / "policies" / "outbox.toml").dispatcher

    def line(label: str, n: int, wall: float, cpu: float, child_cpu: float, note: str) -> None:
        print(
            f"{label:<28} {n / wall:7.0f}/s  {n} in {wall:5.2f} s  "
            f"gateway CPU {cpu / n * 1000:5.2f} ms  "
            f"sandbox CPU {child_cpu / n * 1000:5.2f} ms  {note}"
        )

    async with (
        await _systems(urls) as systems,
        open_store(args.store or f"sqlite:///{(args.store_dir or tmp) / 'gateway.db'}") as store,
    ):
        report = await discover(store, systems)  # as the gateway does at start
        print(f"cross-reference registry: {sum(report.linked.values())} ids linked by discovery")
        write = WritePath(store, systems, reference)
        # 1. completion latency at steady rates, the dispatcher on
        taken = 0
        async with anyio.create_task_group() as tg:
            dispatcher = Dispatcher(store, systems, policy=policy)
            await tg.start(dispatcher.run)
            runs = [
                ("closeOpportunity", rate, count) for rate, count in zip(rates, counts, strict=True)
            ]
            # onboarding too, at the lowest rate: four systems written in a row
            runs.append(("onboardCustomer", rates[0], counts[0]))
            fresh = iter(range(10**6, 10**7))
            for kind, rate, count in runs:
                if kind == "closeOpportunity":
                    inputs = opportunities[taken : taken + count]
                    taken += count
                else:
                    inputs = [
                        {
                            "name": f"Latency {n} GmbH",
                            "taxId": f"DE{n:09d}",
                            "country": "DE",
                            "paymentTerms": "NT30",
                        }
                        for n in (next(fresh) for _ in range(count))
                    ]
                child_before = _children_cpu(children)
                await meter.start()
                async with _profiled(args.py_spy, f"{kind}-{rate:g}", meter.pids):
                    latencies, cpu, failed = await latency_phase(store, write, kind, inputs, rate)
                child_cpu = _children_cpu(children) - child_before
                ms = [x * 1000 for x in latencies] or [float("nan")]
                print(
                    f"{kind} completion at {rate:g}/s: p50 {_percentile(ms, 0.5):.1f} ms  "
                    f"p99 {_percentile(ms, 0.99):.1f} ms  max {max(ms):.1f} ms  "
                    f"({len(ms)} done, {failed} not; gateway CPU {cpu / count * 1000:.2f} ms, "
                    f"sandbox CPU {child_cpu / count * 1000:.2f} ms per mutation)"
                )
                await meter.report(count)
            dispatcher.stop()
        # 2. acceptance, the dispatcher off (what is accepted stays queued)
        await accept_phase(store, write, "onboardCustomer", onboard[:50], args.concurrency)
        for kind, inputs, note in (
            (
                "onboardCustomer",
                onboard[50:],
                f"(2 ERP duplicate-check reads of {args.latency:g} ms)",
            ),
            (
                "closeOpportunity",
                opportunities[taken : taken + args.accept_close],
                f"(2 validation reads of {args.latency:g} ms)",
            ),
        ):
            child_before = _children_cpu(children)
            await meter.start()
            wall, cpu = await accept_phase(store, write, kind, inputs, args.concurrency)
            line(
                f"accepted {kind}",
                len(inputs),
                wall,
                cpu,
                _children_cpu(children) - child_before,
                note,
            )
            await meter.report(len(inputs))


def _store_name(url: str) -> str:
    if not url:
        return "SQLite (WAL, synchronous=FULL)"
    return f"{url.split(':', 1)[0]} at {url.rsplit('@', 1)[-1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accept", type=int, default=2000, help="onboardCustomer mutations")
    parser.add_argument(
        "--accept-close",
        type=int,
        default=200,
        help="closeOpportunity mutations (each needs an open demo opportunity)",
    )
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--rate", default="20,50,100", help="mutations per second for the latency phase (list)"
    )
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--latency", type=float, default=10.0, help="sandbox latency per call, ms")
    parser.add_argument("--customers", type=int, default=0, help="demo customers (default: enough)")
    parser.add_argument(
        "--store-dir", type=Path, default=None, help="folder for the store (default: a temp dir)"
    )
    parser.add_argument(
        "--store", default="", help="store URL (default: SQLite in --store-dir); an empty database"
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        help="folder: record each latency phase of each process with py-spy (raw stacks)",
    )
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop of every process (crosswalk serve and sandbox run on uvloop)",
    )
    parser.add_argument("--serve-sandbox", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sandbox:
        system, data_dir, customers, port = args.serve_sandbox.split(",")
        serve_sandbox(system, Path(data_dir), int(customers), int(port), args.loop == "uvloop")
        return
    need = args.accept_close + sum(int(float(r) * args.seconds) for r in str(args.rate).split(","))
    customers = args.customers or int(need * 1.45) + 50
    ports = {s: _free_port() for s in SYSTEMS}
    urls = {s: f"http://127.0.0.1:{p}" for s, p in ports.items()}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        log = (tmp / "sandbox.log").open("wb")
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--serve-sandbox",
                    f"{system},{tmp / 'sandbox'},{customers},{ports[system]}",
                    "--loop",
                    args.loop,
                ],
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            for system in SYSTEMS
        ]
        try:
            deadline = time.monotonic() + 300
            for url in urls.values():
                while True:
                    try:
                        if httpx.get(f"{url}/_sandbox/chaos", timeout=2).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline or any(c.poll() is not None for c in children):
                        raise SystemExit("the sandbox systems did not start")
                    time.sleep(0.2)
            print(
                f"sandbox: {customers} customers, {args.latency:g} ms per call, one process per "
                f"system; store: {_store_name(args.store)}; {os.cpu_count()} CPU cores; "
                f"{args.loop} event loops"
            )
            pids = {system: c.pid for system, c in zip(SYSTEMS, children, strict=True)}
            anyio.run(
                bench,
                args,
                urls,
                generate(customers),
                tmp,
                pids,
                backend_options={"use_uvloop": args.loop == "uvloop"},
            )
        finally:
            for child in children:
                child.terminate()
            for child in children:
                child.wait(timeout=30)
            log.close()


if __name__ == "__main__":
    main()
