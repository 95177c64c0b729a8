"""Customer 360 at portal scale from the read model, at the shipped vendor quotas.

Starts `crosswalk up` (the embedded default: four sandbox systems that throttle at their
vendors' rates, the gateway with policies/ as shipped) with ``--customers`` seeded
customers on free loopback ports, waits for the read model's initial load, then:

1. **Rate sweep.** Full customer 360 reads (every field of all four systems) at fixed
   rates (open loop, ``--rates``), ``--seconds`` each, over random customers: p50, p99,
   errors, the gateway's CPU per read (from ``/proc/<pid>/stat``: the load generator
   and the sandbox are not counted), and each system's vendor calls per second (from
   its ``/_sandbox/stats``) beside its policy rate. The highest rate with p99 under
   50 ms and no errors is the headline.
2. **Floor.** The same records read from the store's read-model tables and JSON-encoded,
   no GraphQL, in this process (CPU per read): the gateway's CPU per read against it.
3. **Event to visible.** At ``--steady`` reads/s, an invoice paid and a ticket opened
   through the vendors' own APIs, alternately (``--events`` of them): time until a
   GraphQL read shows the change, p50/p99.
4. **Lost webhooks.** Billing's and support's webhooks off (chaos ``"webhooks": false``)
   for ``--lost-seconds``, a change every 5 s meanwhile; then back on. Recovery: how long
   after each change it showed (through the catch-up alone), and after webhooks came
   back how long until all had.

Throughout, each sandbox's request count is sampled every second: the busiest 60 s
window of vendor calls per system is printed beside its quota (rate x 60).

    .venv/bin/python scripts/bench_read_model.py [--customers 2000] [--seconds 10]
        [--rates 100,200,300,400] [--steady 200] [--events 20] [--lost-seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SYSTEMS = ("erp", "billing", "crm", "support")
PORTAL = {"Authorization": "Bearer demo-portal-key"}
STRIPE = {"Authorization": "Bearer sk_test_crosswalk"}
ZENDESK = {
    "Authorization": "Basic " + base64.b64encode(b"agent@example.com/token:sandbox").decode()
}

QUERY = """query Customer360($id: ID!) {
  customer(id: $id) {
    id
    identity { erp billing crm support }
    golden { name legalName taxId country paymentTerms creditStatus currency email
             segment industry owner supportTier }
    orders(first: 20) { totalCount nodes { id status netAmount currency createdAt } }
    subscriptions(first: 20) { nodes { id status currentPeriodEnd } }
    invoices(first: 20) { nodes { id status total amountDue posted dueDate } }
    balance { amountDue currency openInvoices overdueInvoices }
    opportunities(first: 20) { nodes { id name stage amount status } }
    cases(first: 20) { nodes { id subject status priority } }
    entitlements { nodes { status supportTier ends } }
    freshness { system stale source ageSeconds }
  }
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gateway_pid(port: int) -> int:
    """The `crosswalk serve` child of `crosswalk up` listening on ``port``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in args and str(port).encode() in args:
            return int(entry.name)
    raise RuntimeError(f"no gateway process on port {port}")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Bench:
    def __init__(self, args: argparse.Namespace, var: Path) -> None:
        self.args = args
        self.var = var
        self.ports = {name: free_port() for name in ("gw", *SYSTEMS)}
        self.base = f"http://127.0.0.1:{self.ports['gw']}"
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.rates: dict[str, float] = {}

    def url(self, system: str) -> str:
        return f"http://127.0.0.1:{self.ports[system]}"

    # ------------------------------------------------------------ stack

    def start(self) -> subprocess.Popen[bytes]:
        cmd = [
            sys.executable, "-m", "crosswalk", "up", "--fresh",
            "--port", str(self.ports["gw"]), "--var-dir", str(self.var),
            "--customers", str(self.args.customers),
            *(f"--{s}-port={self.ports[s]}" for s in SYSTEMS),
        ]  # fmt: skip
        log = (self.var.parent / "up.log").open("wb")
        return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    async def wait_loaded(self, session: aiohttp.ClientSession) -> float:
        started = time.monotonic()
        while True:
            try:
                body = await self.gql(session, "{ systems { system sync { loaded records } } }")
                rows = body["data"]["systems"]
                if all(r["sync"]["loaded"] for r in rows):
                    return time.monotonic() - started
            except (aiohttp.ClientError, KeyError, TypeError):
                pass
            if time.monotonic() - started > 600:
                raise RuntimeError("the read model never finished its initial load")
            await asyncio.sleep(0.5)

    async def gql(
        self, session: aiohttp.ClientSession, query: str, **variables: Any
    ) -> dict[str, Any]:
        async with session.post(
            f"{self.base}/graphql",
            data=orjson.dumps({"query": query, "variables": variables}),
            headers={**PORTAL, "Content-Type": "application/json"},
        ) as response:
            body: dict[str, Any] = orjson.loads(await response.read())
            return body

    async def customer_ids(self, session: aiohttp.ClientSession) -> list[str]:
        ids: list[str] = []
        after: str | None = None
        while True:
            body = await self.gql(
                session,
                "query($after: String) { customers(first: 100, after: $after) "
                "{ nodes { id identity { erp billing crm support } } "
                "pageInfo { hasNextPage endCursor } } }",
                after=after,
            )
            page = body["data"]["customers"]
            ids.extend(n["id"] for n in page["nodes"] if all(n["identity"][s] for s in SYSTEMS))
            if not page["pageInfo"]["hasNextPage"]:
                return ids
            after = page["pageInfo"]["endCursor"]

    async def linked_customers(self, session: aiohttp.ClientSession) -> list[str]:
        """Customers linked in all four systems, once discovery has linked (nearly) all."""
        deadline = time.monotonic() + 600
        while True:
            ids = await self.customer_ids(session)
            if len(ids) >= 0.9 * self.args.customers or time.monotonic() > deadline:
                return ids
            await asyncio.sleep(2.0)

    async def stats(self, session: aiohttp.ClientSession) -> dict[str, int]:
        out = {}
        for system in SYSTEMS:
            async with session.get(f"{self.url(system)}/_sandbox/stats") as response:
                out[system] = int((await response.json())["requests"])
        return out

    async def sample_stats(self, session: aiohttp.ClientSession) -> None:
        while True:
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

    # ------------------------------------------------------------ load

    async def fixed_rate(
        self, session: aiohttp.ClientSession, ids: list[str], rate: float, seconds: float
    ) -> dict[str, Any]:
        latencies: list[float] = []
        errors = 0
        tasks: set[asyncio.Task[None]] = set()

        async def one(customer: str) -> None:
            nonlocal errors
            began = time.perf_counter()
            try:
                body = await self.gql(session, QUERY, id=customer)
                if "errors" in body or body.get("data", {}).get("customer") is None:
                    errors += 1
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
            latencies.append(time.perf_counter() - began)

        pid = gateway_pid(self.ports["gw"])
        before_calls = await self.stats(session)
        cpu0 = cpu_seconds(pid)
        started = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(random.choice(ids)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu0
        calls = await self.stats(session)
        return {
            "rate": rate,
            "achieved": n / elapsed,
            "p50_ms": pct(latencies, 0.50) * 1000,
            "p99_ms": pct(latencies, 0.99) * 1000,
            "errors": errors,
            "cpu_ms": cpu / max(n, 1) * 1000,
            "calls_per_s": {s: (calls[s] - before_calls[s]) / elapsed for s in SYSTEMS},
        }

    # ------------------------------------------------------------ floor

    def floor(self, ids: list[str], reads: int = 2000) -> float:
        """CPU ms per read: the records a customer 360 shows, read from the store's
        read-model tables and JSON-encoded (no GraphQL, no HTTP)."""
        db = sqlite3.connect(f"file:{self.var / 'crosswalk.db'}?mode=ro", uri=True)
        xrefs = {
            row[0]: row[1:]
            for row in db.execute("SELECT canonical_id, erp, billing, crm, support FROM xref")
        }
        wanted = {
            "erp": ("customer", "order", "billing_document"),
            "billing": ("customer", "invoice", "subscription"),
            "crm": ("customer", "opportunity"),
            "support": ("customer", "case", "entitlement"),
        }
        chosen = [xrefs[c] for c in ids if c in xrefs]
        cpu0 = time.process_time()
        for i in range(reads):
            native = dict(zip(SYSTEMS, chosen[i % len(chosen)], strict=True))
            answer: dict[str, Any] = {}
            for system, kinds in wanted.items():
                for kind in kinds:
                    rows = db.execute(
                        "SELECT data FROM read_records WHERE system = ? AND kind = ? "
                        "AND customer = ? AND deleted = 0",
                        (system, kind, native[system]),
                    ).fetchall()
                    answer[f"{system}.{kind}"] = [orjson.loads(r[0]) for r in rows]
            orjson.dumps(answer)
        return (time.process_time() - cpu0) / reads * 1000

    # ------------------------------------------------------------ events

    async def open_invoices(self, session: aiohttp.ClientSession) -> list[dict[str, Any]]:
        async with session.get(
            f"{self.url('billing')}/v1/invoices",
            params={"status": "open", "limit": "100"},
            headers=STRIPE,
        ) as response:
            data: list[dict[str, Any]] = (await response.json())["data"]
            return data

    async def visible_after(
        self, session: aiohttp.ClientSession, customer: str, check: Any, guard: float = 120.0
    ) -> float:
        started = time.monotonic()
        while time.monotonic() - started < guard:
            body = await self.gql(session, QUERY, id=customer)
            if check(body.get("data", {}).get("customer") or {}):
                return time.monotonic() - started
            await asyncio.sleep(0.01)
        return float("inf")

    async def change(
        self, session: aiohttp.ClientSession, n: int, invoices: list[dict[str, Any]]
    ) -> tuple[str, Any]:
        """Make one change through a vendor's own API: (customer id, check it shows)."""
        if n % 2 == 0:
            invoice = invoices.pop()
            async with session.post(
                f"{self.url('billing')}/v1/invoices/{invoice['id']}/pay", headers=STRIPE
            ) as response:
                response.raise_for_status()
            wanted = invoice["id"]
            return f"billing:{invoice['customer']}", lambda c: any(
                i["id"] == wanted and i["status"] == "paid"
                for i in (c.get("invoices") or {}).get("nodes", [])
            )
        invoice = invoices.pop()
        body = await self.gql(
            session,
            "query($id: ID!) { customer(id: $id) { identity { support } } }",
            id=f"billing:{invoice['customer']}",
        )
        org = body["data"]["customer"]["identity"]["support"]
        async with session.post(
            f"{self.url('support')}/api/v2/tickets.json",
            json={"ticket": {"subject": f"bench {n}", "comment": {"body": "."},
                             "organization_id": int(org)}},
            headers=ZENDESK,
        ) as response:  # fmt: skip
            ticket = str((await response.json())["ticket"]["id"])
        return f"billing:{invoice['customer']}", lambda c: any(
            t["id"] == ticket for t in (c.get("cases") or {}).get("nodes", [])
        )

    async def chaos(self, session: aiohttp.ClientSession, system: str, **settings: Any) -> None:
        async with session.post(f"{self.url(system)}/_sandbox/chaos", json=settings) as response:
            response.raise_for_status()


async def run(args: argparse.Namespace) -> None:
    from gateway.governance.readmodel import load_readmodel_policy
    from gateway.governance.systems import load_systems_policy

    policy = load_systems_policy(ROOT / "policies" / "systems.toml", environ={})
    quotas = {str(s): p.rate.per_second for s, p in policy.systems.items()}
    with tempfile.TemporaryDirectory(prefix="bench-rm-") as tmp:
        bench = Bench(args, Path(tmp) / "var")
        proc = bench.start()
        timeout = aiohttp.ClientTimeout(total=30)
        connector = aiohttp.TCPConnector(limit=512)
        try:
            async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
                loaded = await bench.wait_loaded(session)
                ids = await bench.linked_customers(session)
                print(
                    f"crosswalk up: {args.customers} customers seeded, {len(ids)} linked in all "
                    f"four systems; read model loaded in {loaded:.1f} s after start-up"
                )
                sampler = asyncio.create_task(bench.sample_stats(session))
                print("\n1. full customer 360 reads at fixed rates (open loop)")
                print(
                    f"{'rate/s':>7} {'achieved':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
                    f"{'cpu ms':>7}  vendor calls/s (quota)"
                )
                best = 0.0
                results = []
                for rate in args.rates:
                    r = await bench.fixed_rate(session, ids, rate, args.seconds)
                    results.append(r)
                    calls = "  ".join(
                        f"{s} {r['calls_per_s'][s]:.2f} ({quotas[s]:g})" for s in SYSTEMS
                    )
                    print(
                        f"{rate:7.0f} {r['achieved']:8.1f} {r['p50_ms']:7.1f} {r['p99_ms']:7.1f} "
                        f"{r['errors']:6d} {r['cpu_ms']:7.2f}  {calls}"
                    )
                    if r["p99_ms"] < 50 and r["errors"] == 0:
                        best = max(best, rate)
                print(f"highest rate with p99 < 50 ms and no errors: {best:.0f} reads/s")

                floor = bench.floor(ids)
                at = min(results, key=lambda r: abs(r["rate"] - args.steady))
                steady_cpu = at["cpu_ms"]
                print(
                    "\n2. floor: the same records from the store's read-model tables, "
                    "JSON-encoded, no GraphQL"
                )
                print(
                    f"floor {floor:.2f} ms CPU per read; gateway {steady_cpu:.2f} ms at "
                    f"{args.steady:g}/s: x{steady_cpu / floor:.2f}"
                )

                print(f"\n3. event to visible, at a steady {args.steady:g} reads/s")
                invoices = list(await bench.open_invoices(session))
                random.shuffle(invoices)
                load = asyncio.create_task(bench.fixed_rate(session, ids, args.steady, 3600.0))
                delays: dict[str, list[float]] = {"invoice paid": [], "ticket opened": []}
                for n in range(args.events):
                    customer, check = await bench.change(session, n, invoices)
                    seconds = await bench.visible_after(session, customer, check)
                    delays["invoice paid" if n % 2 == 0 else "ticket opened"].append(seconds)
                load.cancel()
                every = [d for ds in delays.values() for d in ds]
                for label, ds in delays.items():
                    print(
                        f"{label:>14}: p50 {pct(ds, 0.5) * 1000:6.0f} ms  "
                        f"p99 {pct(ds, 0.99) * 1000:6.0f} ms  (n={len(ds)})"
                    )
                print(
                    f"{'all':>14}: p50 {pct(every, 0.5) * 1000:6.0f} ms  "
                    f"p99 {pct(every, 0.99) * 1000:6.0f} ms"
                )

                print(
                    f"\n4. {args.lost_seconds:g} s of lost webhooks (billing and support), "
                    "a change every 5 s"
                )
                for system in ("billing", "support"):
                    await bench.chaos(session, system, webhooks=False)
                interval = load_readmodel_policy(
                    ROOT / "policies" / "readmodel.toml"
                ).catch_up_interval
                shown: list[float] = []

                async def watch(made: float, customer: str, check: Any) -> None:
                    await bench.visible_after(session, customer, check)
                    shown.append(time.monotonic() - made)

                watchers = []
                started = time.monotonic()
                n = 0
                while time.monotonic() - started < args.lost_seconds:
                    customer, check = await bench.change(session, n, invoices)
                    watchers.append(asyncio.create_task(watch(time.monotonic(), customer, check)))
                    n += 1
                    await asyncio.sleep(5.0)
                ended = time.monotonic()
                await asyncio.gather(*watchers)
                for system in ("billing", "support"):
                    await bench.chaos(session, system, webhooks=True)
                print(
                    f"{len(watchers)} changes, none delivered by webhook; each showed after "
                    f"p50 {pct(shown, 0.5):.1f} s, max {max(shown):.1f} s (the catch-up alone; "
                    f"shipped interval {interval:g} s); all shown "
                    f"{max(0.0, time.monotonic() - ended):.1f} s after the outage window ended"
                )

                sampler.cancel()
                busiest = bench.busiest_minute()
                print("\nbusiest 60 s of vendor calls per system (quota = policy rate x 60):")
                for s in SYSTEMS:
                    print(
                        f"  {s:<8} {busiest[s]:6d}  quota {quotas[s] * 60:6.0f}  "
                        f"{'OK' if busiest[s] <= quotas[s] * 60 else 'OVER'}"
                    )
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--rates", type=lambda s: [float(x) for x in s.split(",")], default=[100, 200, 300, 400]
    )
    parser.add_argument("--steady", type=float, default=200.0)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--lost-seconds", type=float, default=60.0)
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
