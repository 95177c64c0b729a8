"""Several gateway replicas on one store and one bus: accepted mutations, completion, reads.

    .venv/bin/python scripts/bench_replicas.py --replicas 2 \\
        --store postgresql://postgres@127.0.0.1:5432/postgres --bus nats://127.0.0.1:4222

Real processes over real HTTP: ``crosswalk sandbox`` runs the four systems at their shipped
quotas; ``--replicas`` processes of ``crosswalk serve`` share the store (a PostgreSQL URL
names the server: the bench makes a database of its own there and drops it after; a
``sqlite:///`` URL a file) and the bus. Load is spread over the replicas round-robin,
from this process (aiohttp; its CPU is on the same 2-core machine, so it competes).

1. completion: ``onboardCustomer`` at ``--rate`` per second for ``--seconds``, each with
   its own ``Idempotency-Key``; the time from acceptance to SUCCEEDED, from the
   operation's own ``createdAt``/``updatedAt`` (p50/p99). Each onboarding is a saga of
   four vendor writes, so the rate must stay within the vendors' quotas.
2. accepted mutations per second: ``--concurrency`` clients send ``--accept``
   ``onboardCustomer`` mutations, each with its own key; the dispatcher delivers them at
   the quota's pace behind (the backlog is not waited for). Reported with the answers'
   p50/p99 and any error codes.
3. reads: customer 360s at ``--read-rate`` per second for ``--seconds``, spread over the
   replicas (answered from each replica's read model), p50/p99.

Throughout, each sandbox's request count is sampled every second: the busiest 60 s per
system is printed beside its quota (policy rate x 60).

``--lifted`` measures the gateway instead of the quotas: the sandboxes run with their own
rate limits lifted and no webhooks (``bench_outbox.py``'s sandbox children), the
replicas' policy rate is raised to 5,000 calls/s per system, and only the accept phase
runs. Accepting a mutation still reads the vendors (onboardCustomer's ERP duplicate
check: two reads), so the sandboxes' CPU is on the same two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.governance.systems import load_systems_policy  # noqa: E402

SYSTEMS = ("erp", "billing", "crm", "support")
WIDGET = {"Authorization": "Bearer demo-widget-key", "Content-Type": "application/json"}
PORTAL = {"Authorization": "Bearer demo-portal-key", "Content-Type": "application/json"}
ONBOARD = "mutation($input: OnboardCustomerInput!) { onboardCustomer(input: $input) { id status } }"
OPERATION = "query($id: ID!) { operation(id: $id) { status createdAt updatedAt } }"
CUSTOMER = (
    "query($id: ID!) { customer(id: $id) { id golden { name } "
    "invoices(first: 5) { nodes { id status } } cases(first: 5) { nodes { id status } } "
    "freshness { system stale } } }"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.asynccontextmanager
async def database(url: str) -> AsyncIterator[str]:
    """A store URL of the bench's own: a fresh PostgreSQL database, or a SQLite file."""
    if url.startswith("sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    import asyncpg

    name = f"cw_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base, _, _ = url.rpartition("/")
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextlib.contextmanager
def process(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path, store: str) -> None:
        self.args = args
        self.tmp = tmp
        self.store = store
        self.sandbox = {s: free_port() for s in SYSTEMS}
        self.gateways = [free_port() for _ in range(args.replicas)]
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.next = itertools.cycle(range(args.replicas))
        self.taxes = itertools.count(uuid.uuid4().int % 10**8 * 10)
        #: the first message of each error code
        self.examples: dict[str, str] = {}

    def sandbox_cmds(self) -> list[list[str]]:
        if self.args.lifted:
            return [
                [
                    sys.executable, str(ROOT / "scripts" / "bench_outbox.py"), "--serve-sandbox",
                    f"{s},{self.tmp / 'sandbox'},{self.args.customers},{p}",
                ]
                for s, p in self.sandbox.items()
            ]  # fmt: skip
        return [self.sandbox_cmd()]

    def sandbox_cmd(self) -> list[str]:
        return [
            sys.executable, "-m", "crosswalk", "sandbox", "--fresh",
            "--data-dir", str(self.tmp / "sandbox"), "--customers", str(self.args.customers),
            "--gateway-url", f"http://127.0.0.1:{self.gateways[0]}",
            *(f"--{s}-port={p}" for s, p in self.sandbox.items()),
        ]  # fmt: skip

    def gateway_cmd(self, n: int) -> list[str]:
        return [
            sys.executable, "-m", "crosswalk", "serve", "--profile", "sandbox",
            "--port", str(self.gateways[n]), "--var-dir", str(self.tmp / f"var{n}"),
            "--store", self.store, *(["--bus", self.args.bus] if self.args.bus else []),
            *(["--policies", str(self.tmp / "policies")] if self.args.lifted else []),
            *(f"--{s}-url=http://127.0.0.1:{p}" for s, p in self.sandbox.items()),
        ]  # fmt: skip

    def base(self) -> str:
        return f"http://127.0.0.1:{self.gateways[next(self.next)]}"

    async def wait_ready(self, session: aiohttp.ClientSession, url: str, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.3)
        raise RuntimeError(f"{url} never became ready")

    async def post(
        self, session: aiohttp.ClientSession, base: str, query: str, headers: dict[str, str],
        **variables: Any,
    ) -> dict[str, Any]:  # fmt: skip
        async with session.post(
            f"{base}/graphql",
            data=orjson.dumps({"query": query, "variables": variables}),
            headers=headers,
        ) as response:
            body: dict[str, Any] = orjson.loads(await response.read())
            return body

    def onboarding(self) -> dict[str, Any]:
        n = next(self.taxes) % 10**9
        return {"name": f"Replica {n} GmbH", "taxId": f"DE{n:09d}", "country": "DE",
                "paymentTerms": "NT30"}  # fmt: skip

    async def onboard(self, session: aiohttp.ClientSession) -> tuple[str | None, str]:
        """One onboardCustomer with its own key: (operation id or None, error code)."""
        headers = {**WIDGET, "Idempotency-Key": uuid.uuid4().hex}
        body = await self.post(session, self.base(), ONBOARD, headers, input=self.onboarding())
        if body.get("data") and body["data"].get("onboardCustomer"):
            return body["data"]["onboardCustomer"]["id"], ""
        error = (body.get("errors") or [{}])[0]
        code = str(error.get("extensions", {}).get("code"))
        if code not in self.examples:
            self.examples[code] = str(error.get("message"))[:300]
        return None, code

    async def stats(self, session: aiohttp.ClientSession) -> dict[str, int]:
        out = {}
        for system, port in self.sandbox.items():
            async with session.get(f"http://127.0.0.1:{port}/_sandbox/stats") as response:
                out[system] = int((await response.json())["requests"])
        return out

    async def sample_stats(self, session: aiohttp.ClientSession) -> None:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                self.samples.append((time.monotonic(), await self.stats(session)))
            await asyncio.sleep(1.0)

    def busiest_minute(self) -> dict[str, int]:
        busiest = dict.fromkeys(SYSTEMS, 0)
        for i, (t0, first) in enumerate(self.samples):
            for t1, last in self.samples[i:]:
                if t1 - t0 > 60.0:
                    break
                for s in SYSTEMS:
                    busiest[s] = max(busiest[s], last[s] - first[s])
        return busiest

    async def wait_loaded(self, session: aiohttp.ClientSession, port: int) -> None:
        """Until the replica's read model has finished its initial load."""
        query = "{ systems { system sync { loaded } } }"
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, KeyError, TypeError):
                body = await self.post(session, f"http://127.0.0.1:{port}", query, PORTAL)
                if all(row["sync"]["loaded"] for row in body["data"]["systems"]):
                    return
            await asyncio.sleep(0.5)
        raise RuntimeError("the read model never finished its initial load")

    # ------------------------------------------------------------ phases

    async def completion(self, session: aiohttp.ClientSession) -> None:
        rate, seconds = self.args.rate, self.args.seconds
        ids: list[str] = []
        errors: Counter[str] = Counter()
        started = time.monotonic()
        for n in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            op, code = await self.onboard(session)
            if op:
                ids.append(op)
            else:
                errors[code] += 1
        latencies: list[float] = []
        deadline = time.monotonic() + 120
        pending = list(ids)
        while pending and time.monotonic() < deadline:
            still = []
            for op in pending:
                body = await self.post(session, self.base(), OPERATION, WIDGET, id=op)
                found = body["data"]["operation"]
                if found["status"] == "SUCCEEDED":
                    made = datetime.fromisoformat(found["createdAt"])
                    done = datetime.fromisoformat(found["updatedAt"])
                    latencies.append((done - made).total_seconds() * 1000)
                elif found["status"] in ("FAILED", "NEEDS_ATTENTION"):
                    errors[found["status"]] += 1
                else:
                    still.append(op)
            pending = still
            if pending:
                await asyncio.sleep(0.5)
        print(
            f"completion at {rate:g}/s for {seconds:g} s: {len(latencies)} succeeded, "
            f"p50 {pct(latencies, 0.5):.0f} ms  p99 {pct(latencies, 0.99):.0f} ms  "
            f"unfinished {len(pending)}  errors {dict(errors) or 0}",
            flush=True,
        )

    async def accept(self, session: aiohttp.ClientSession) -> None:
        total, answered = self.args.accept, 0
        times: list[float] = []
        errors: Counter[str] = Counter()
        left = itertools.count()

        async def client() -> None:
            nonlocal answered
            while next(left) < total:
                t0 = time.perf_counter()
                op, code = await self.onboard(session)
                times.append((time.perf_counter() - t0) * 1000)
                if op:
                    answered += 1
                else:
                    errors[code] += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(self.args.concurrency)))
        wall = time.perf_counter() - started
        print(
            f"accepted onboardCustomer: {answered / wall:,.0f}/s ({answered} in {wall:.1f} s, "
            f"{self.args.concurrency} clients)  answer p50 {pct(times, 0.5):.1f} ms  "
            f"p99 {pct(times, 0.99):.1f} ms  errors {dict(errors) or 0}",
            flush=True,
        )

    async def reads(self, session: aiohttp.ClientSession) -> None:
        body = await self.post(
            session, self.base(), "{ customers(first: 100) { nodes { id } } }", PORTAL
        )
        ids = [n["id"] for n in body["data"]["customers"]["nodes"]]
        rate, seconds = self.args.read_rate, self.args.seconds
        latencies: list[float] = []
        errors = 0

        async def one(customer: str) -> None:
            nonlocal errors
            t0 = time.perf_counter()
            answer = await self.post(session, self.base(), CUSTOMER, PORTAL, id=customer)
            latencies.append((time.perf_counter() - t0) * 1000)
            errors += bool(answer.get("errors"))

        tasks = []
        started = time.monotonic()
        for n in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(ids[n % len(ids)])))
        await asyncio.gather(*tasks)
        print(
            f"customer 360 reads at {rate:g}/s: p50 {pct(latencies, 0.5):.1f} ms  "
            f"p99 {pct(latencies, 0.99):.1f} ms  errors {errors}",
            flush=True,
        )


def lifted_policies(folder: Path) -> None:
    """The shipped policies with every system's rate raised to 5,000 calls/s."""
    shutil.copytree(ROOT / "policies", folder)
    systems = (folder / "systems.toml").read_text()
    systems = re.sub(
        r"rate = \{ per_second = [0-9.]+, burst = [0-9]+ \}",
        "rate = { per_second = 5000.0, burst = 5000 }",
        systems,
    )
    (folder / "systems.toml").write_text(systems)


async def run(args: argparse.Namespace) -> None:
    async with database(args.store) as store:
        with contextlib.ExitStack() as scratch:
            folder = args.keep or scratch.enter_context(tempfile.TemporaryDirectory())
            tmp = Path(folder)
            bench = Bench(args, tmp, store)
            timeout = aiohttp.ClientTimeout(total=60)
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
                with contextlib.ExitStack() as stack:
                    if args.lifted:
                        lifted_policies(tmp / "policies")
                    for n, cmd in enumerate(bench.sandbox_cmds()):
                        stack.enter_context(process(cmd, tmp / f"sandbox{n}.log"))
                    for port in bench.sandbox.values():
                        await bench.wait_ready(
                            session, f"http://127.0.0.1:{port}/_sandbox/chaos", 300
                        )
                    for n in range(args.replicas):
                        stack.enter_context(process(bench.gateway_cmd(n), tmp / f"gw{n}.log"))
                        # one at a time: the first applies the store's migrations
                        await bench.wait_ready(
                            session, f"http://127.0.0.1:{bench.gateways[n]}/readyz", 120
                        )
                    for port in bench.gateways if not args.lifted else ():
                        await bench.wait_loaded(session, port)
                    print(
                        f"{args.replicas} replica(s), store {args.store.split('://')[0]}, "
                        f"bus {args.bus or 'in-process'}, {os.cpu_count()} cores",
                        flush=True,
                    )
                    sampler = asyncio.create_task(bench.sample_stats(session))
                    try:
                        if not args.lifted:
                            await bench.completion(session)
                            await bench.reads(session)
                        await bench.accept(session)
                    finally:
                        sampler.cancel()
                    folder = tmp / "policies" if args.lifted else ROOT / "policies"
                    policy = load_systems_policy(folder / "systems.toml")
                    quotas = {s.value: p.rate.per_second for s, p in policy.systems.items()}
                    for code, message in bench.examples.items():
                        print(f"  {code}: {message}")
                    busiest = bench.busiest_minute()
                    print("busiest 60 s of vendor calls per system (quota = policy rate x 60):")
                    for s in SYSTEMS:
                        print(f"  {s:<8} {busiest[s]:6d}  quota {quotas[s] * 60:6.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--bus", default="nats://127.0.0.1:4222", help="'' for in-process")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--rate", type=float, default=2.0, help="onboardings/s, completion")
    parser.add_argument("--read-rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--accept", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--lifted", action="store_true", help="the gateway, not the quotas")
    parser.add_argument("--keep", help="an empty folder for the processes' logs and state")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
