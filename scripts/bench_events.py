"""Events in, propagation out, reconciliation: on `crosswalk up` at the shipped quotas.

For each ``--customers`` size it starts `crosswalk up` (sandboxes throttle at their
vendors' rates, the gateway as shipped), waits for the read model, then:

1. **Webhooks accepted per second.** Signed Stripe events (``charge.succeeded``, which
   no flow reads back) posted to ``/webhooks/billing`` by ``--concurrency`` clients for
   ``--seconds``: verified, deduplicated and stored per second, p50/p99.
2. **Propagation.** Invoices paid through billing's own API at ``--rates`` per second:
   each ``invoice.paid`` webhook starts ``invoicePaid`` (CRM billing status, support
   organization status). From the payment to the flow's last write (its operation
   finished): p50, p99, how many completed, and vendor calls per second beside each quota.
3. **Reconciliation.** `crosswalk reconcile --json` wall time, and interactive customer
   360 p99 (``--read-rate``/s, ``maxAge: 0`` so every read spends the interactive quota)
   with reconciliation running back to back against the same reads without it.

    .venv/bin/python scripts/bench_events.py [--customers 200,2000] [--rates 5,50]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_read_model import SYSTEMS, Bench, pct  # noqa: E402

SECRET = b"whsec_crosswalk_sandbox"
STRIPE = {"Authorization": "Bearer sk_test_crosswalk"}
LIVE_QUERY = """query($id: ID!) { customer(id: $id, maxAge: 0) {
  golden { name } invoices(first: 5) { nodes { id status } } cases(first: 5) { nodes { id } }
} }"""


def signed(body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    digest = hmac.new(SECRET, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={stamp},v1={digest}", "Content-Type": "application/json"}


async def webhooks_per_second(
    bench: Bench, session: aiohttp.ClientSession, seconds: float, concurrency: int
) -> tuple[float, float, float]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < stop:
            event = {
                "id": f"evt_bench{random.getrandbits(64):016x}",
                "object": "event",
                "type": "charge.succeeded",
                "created": int(time.time()),
                "data": {"object": {"id": f"ch_{random.getrandbits(40):010x}"}},
            }
            body = orjson.dumps(event)
            began = time.perf_counter()
            async with session.post(
                f"{bench.base}/webhooks/billing", data=body, headers=signed(body)
            ) as response:
                await response.read()
                if response.status == 200:
                    latencies.append(time.perf_counter() - began)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, pct(latencies, 0.5) * 1000, pct(latencies, 0.99) * 1000


async def propagation(
    bench: Bench, session: aiohttp.ClientSession, invoices: list[dict[str, Any]], rate: float,
    seconds: float,
) -> dict[str, Any]:  # fmt: skip
    paid_at: dict[str, float] = {}
    count = min(len(invoices), int(rate * seconds))
    before = await bench.stats(session)
    started = time.time()
    tasks = []

    async def pay(invoice: dict[str, Any]) -> None:
        moment = time.time()
        async with session.post(
            f"{bench.url('billing')}/v1/invoices/{invoice['id']}/pay", headers=STRIPE
        ) as response:
            await response.read()
            if response.status == 200:
                paid_at[invoice["id"]] = moment

    for n in range(count):
        delay = started + n / rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(pay(invoices.pop())))
    await asyncio.gather(*tasks)
    # wait for the flows to finish (a guard of two minutes)
    db = sqlite3.connect(f"file:{bench.var / 'crosswalk.db'}?mode=ro", uri=True)
    deadline = time.time() + 120
    done: dict[str, float] = {}
    while time.time() < deadline:
        rows = db.execute(
            "SELECT json_extract(i.payload, '$.subject'), o.updated_at FROM operations o "
            "JOIN inbox i ON i.system = 'billing' "
            "AND i.event_id = json_extract(o.input, '$.event.id') "
            "WHERE o.kind = 'invoicePaid' AND o.status = 'SUCCEEDED'"
        ).fetchall()
        done = {row[0]: row[1] / 1e6 for row in rows if row[0] in paid_at}
        if len(done) >= len(paid_at):
            break
        await asyncio.sleep(0.5)
    elapsed = time.time() - started
    after = await bench.stats(session)
    delays = [done[i] - paid_at[i] for i in done]
    return {
        "rate": rate,
        "paid": len(paid_at),
        "propagated": len(done),
        "p50": pct(delays, 0.5),
        "p99": pct(delays, 0.99),
        "calls": {s: (after[s] - before[s]) / elapsed for s in SYSTEMS},
    }


async def reads_p99(
    bench: Bench, session: aiohttp.ClientSession, ids: list[str], rate: float, seconds: float
) -> float:
    latencies: list[float] = []
    started = time.perf_counter()
    tasks = []

    async def one(customer: str) -> None:
        began = time.perf_counter()
        await bench.gql(session, LIVE_QUERY, id=customer)
        latencies.append(time.perf_counter() - began)

    for n in range(int(rate * seconds)):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(random.choice(ids))))
    await asyncio.gather(*tasks)
    return pct(latencies, 0.99) * 1000


def reconcile_seconds(bench: Bench) -> tuple[float, int]:
    env = {
        **os.environ,
        **{f"CROSSWALK_{s.upper()}_URL": bench.url(s) for s in SYSTEMS},
    }
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "crosswalk", "reconcile", "--json", "--var-dir", str(bench.var)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    seconds = time.perf_counter() - began
    findings = len(json.loads(done.stdout)["findings"]) if done.stdout else -1
    return seconds, findings


async def run_size(args: argparse.Namespace, customers: int, quotas: dict[str, float]) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        args.customers = customers
        bench = Bench(args, Path(tmp) / "var")
        proc = bench.start()
        connector = aiohttp.TCPConnector(limit=512)
        try:
            async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=60), connector=connector
            ) as session:
                loaded = await bench.wait_loaded(session)
                ids = await bench.linked_customers(session)
                print(f"\n== {customers} customers (read model loaded {loaded:.1f} s after start)")
                per_s, p50, p99 = await webhooks_per_second(
                    bench, session, args.seconds, args.concurrency
                )
                print(f"1. webhooks accepted: {per_s:.0f}/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms "
                      f"({args.concurrency} senders)")  # fmt: skip
                invoices = await bench.open_invoices(session)
                random.shuffle(invoices)
                print("2. invoice paid in billing -> CRM and support updated (invoicePaid):")
                for rate in args.rates:
                    r = await propagation(bench, session, invoices, rate, args.seconds)
                    calls = "  ".join(f"{s} {r['calls'][s]:.1f} ({quotas[s]:g})" for s in SYSTEMS)
                    print(
                        f"   {rate:g}/s: {r['propagated']}/{r['paid']} propagated, "
                        f"p50 {r['p50']:.2f} s, p99 {r['p99']:.2f} s;  calls/s {calls}"
                    )
                    if not invoices:
                        print("   (no open invoices left for higher rates)")
                        break
                quiet = await reads_p99(bench, session, ids, args.read_rate, args.seconds)
                results: list[tuple[float, int]] = []

                async def reconcile_loop(stop: float) -> None:
                    while time.perf_counter() < stop:
                        results.append(await asyncio.to_thread(reconcile_seconds, bench))

                stop = time.perf_counter() + args.seconds
                loop = asyncio.create_task(reconcile_loop(stop))
                busy = await reads_p99(bench, session, ids, args.read_rate, args.seconds)
                await loop
                took = [r[0] for r in results]
                print(f"3. reconcile: {len(results)} run(s), {statistics_line(took)}, "
                      f"{results[0][1] if results else '-'} findings; interactive p99 "
                      f"{quiet:.1f} ms without, {busy:.1f} ms during ({args.read_rate:g} live "
                      "reads/s)")  # fmt: skip
        finally:
            proc.send_signal(2)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def statistics_line(values: list[float]) -> str:
    if not values:
        return "none finished"
    return f"{min(values):.1f}-{max(values):.1f} s each (process start included)"


async def main_async(args: argparse.Namespace) -> None:
    from gateway.governance.systems import load_systems_policy

    policy = load_systems_policy(ROOT / "policies" / "systems.toml", environ={})
    quotas = {str(s): p.rate.per_second for s, p in policy.systems.items()}
    print(f"bench_events {datetime.now().isoformat(timespec='seconds')}: quotas {quotas}")
    for customers in args.customers:
        await run_size(args, customers, quotas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--customers", type=lambda s: [int(x) for x in s.split(",")], default=[200, 2000]
    )
    parser.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[5, 50])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--read-rate", type=float, default=5.0)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
