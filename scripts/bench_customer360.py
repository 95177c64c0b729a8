"""Customer 360 through the gateway against the floor: four direct reads, no GraphQL.

(Longer than 500 lines on purpose: one benchmark that reads top to bottom, and one file
because each child process -- sandbox, gateway, actors, floor -- is this script run again
with its role as the first argument.)

Starts, each in its own process on free loopback ports:

- the four sandbox systems (one process, rate limits raised so they never throttle),
  every vendor call delayed by ``--latency-ms`` (chaos ``latency_ms``);
- the gateway: real store, discovery sync, the four system actors (each vendor call
  written to the audit trail, as ``gateway.runtime`` does), the GraphQL app
  (``gateway.graphql.app.create_graphql_app``) under uvicorn; the vendors' rate limits
  are lifted (the sandbox does not throttle here) and each actor's bulkhead is sized to
  64 calls like the floor's connection pools;
- the floor: an ASGI endpoint under the same uvicorn that makes the same four upstream
  reads (ERP business partner, CRM account, billing subscriptions, support tickets)
  directly in parallel with aiohttp, the connectors' HTTP client, and answers JSON;
- for the breakdown, the same four reads through the actors and connectors without
  GraphQL (gateway minus this = what the GraphQL layer costs).

For both it measures, with an aiohttp load generator in this process:

- saturation: ``--concurrency`` clients back to back for ``--seconds``: requests per
  second and the serving process's own CPU milliseconds per request (from
  ``/proc/<pid>/stat``, so the sandbox and the load generator, sharing the machine,
  are not counted);
- latency at a fixed ``--rate`` requests per second (open loop): p50 and p99;
- the same fixed-rate latency with billing in outage (its breaker opens; the gateway
  answers billing's fields from last-known-good, marked stale).

Every serving process runs on the same event loop (``--loop``, uvloop by default) and the
same garbage-collector settings (``crosswalk.gc_settings.tune_gc``, which ``crosswalk
serve`` applies), so the gateway and the floor differ only in the code a request runs.

    .venv/bin/python scripts/bench_customer360.py [--seconds 10] [--customers 200]
                                                  [--loop uvloop|asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUERY = """query Customer360($id: ID!) {
  customer(id: $id) {
    id
    golden { legalName country paymentTerms segment industry owner }
    subscriptions { nodes { id status currentPeriodEnd } stale ageSeconds }
    cases { nodes { id status subject priority } }
  }
}"""
PORTAL_KEY = "demo-portal-key"
#: a well-formed Salesforce Account id for readiness probes (matches no record)
PROBE_CRM_ID = "001000000000000AAA"
SYSTEMS = ("erp", "billing", "crm", "support")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


#: the event loop every serving process runs on (the gateway, the actors-only target and
#: the floor alike): ``uvicorn.run`` picks uvloop by itself when it is installed, while
#: ``anyio.run`` starts plain asyncio, so without this the floor alone would get uvloop
LOOP_ENV = "CROSSWALK_BENCH_LOOP"


def event_loop() -> str:
    return os.environ.get(LOOP_ENV, "uvloop")


def spawn(args: list[str]) -> subprocess.Popen[bytes]:
    """Start a child process (Popen returns at once; nothing here blocks the loop)."""
    return subprocess.Popen([sys.executable, __file__, *args])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- child: sandbox


def run_sandbox(data_dir: str, customers: int, ports: list[int]) -> None:
    import anyio
    import uvicorn

    from sandbox.app import SandboxConfig

    def app(system: str, port: int) -> Any:
        config = SandboxConfig.for_system(
            system, port=port, data_dir=Path(data_dir), gateway_url=None, customers=customers
        )
        if system == "erp":
            from sandbox.erp import create_app as erp

            return erp(config, rate=1e6, burst=1_000_000)
        if system == "billing":
            from sandbox.billing import create_app as billing

            return billing(config, rate_per_second=1e6, rate_burst=1e6)
        if system == "crm":
            from sandbox.crm.app import create_app as crm

            return crm(config, daily_limit=10**9, per_second=1e6, burst=1_000_000)
        from sandbox.support import create_app as support

        return support(config, rate_limit=10**9)

    async def main() -> None:
        servers = [
            uvicorn.Server(
                uvicorn.Config(
                    app(system, port),
                    host="127.0.0.1",
                    port=port,
                    log_level="warning",
                    access_log=False,
                )
            )
            for system, port in zip(SYSTEMS, ports, strict=True)
        ]
        async with anyio.create_task_group() as tg:
            for server in servers:
                tg.start_soon(server.serve)

    anyio.run(main, backend_options={"use_uvloop": event_loop() == "uvloop"})


# ---------------------------------------------------------------- child: gateway


def run_gateway(data_dir: str, port: int, urls: dict[str, str], *, graphql: bool = True) -> None:
    import anyio
    import uvicorn

    from actors import Systems
    from canonical import System
    from gateway.governance.policies import load_policies
    from gateway.governance.systems import ENV_URLS, RatePolicy, load_systems_policy
    from gateway.graphql.app import create_graphql_app
    from gateway.observability.audit import AuditWriter
    from gateway.processes.discovery import discover
    from gateway.store import open_store

    environ = {ENV_URLS[System(s)]: url for s, url in urls.items()}
    systems_policy = load_systems_policy(ROOT / "policies" / "systems.toml", environ=environ)
    # the sandbox does not throttle here: lift the vendors' rates, and size the bulkheads
    # like the floor's connection pools (64), so that only the code's cost is measured
    systems_policy = dataclasses.replace(
        systems_policy,
        systems={
            s: dataclasses.replace(
                p,
                health_interval=0.0,
                rate=RatePolicy(per_second=1e6, burst=1_000_000),
                workers=64,
                max_connections=64,
            )
            for s, p in systems_policy.systems.items()
        },
    )
    policies = load_policies(ROOT / "policies")

    @dataclasses.dataclass
    class Runtime:
        settings: Any
        policies: Any
        store: Any
        systems: Any

    async def main() -> None:
        async with (
            open_store(f"sqlite:///{data_dir}/gateway-{port}.db") as store,
            # as gateway.runtime wires it: every vendor call goes to the audit trail
            AuditWriter(store, capacity=policies.audit.queue) as audit,
            Systems(systems_policy, on_call=audit.record) as systems,
        ):
            report = await discover(store, systems)
            if report.failed:
                raise SystemExit(f"discovery failed: {report.failed}")
            settings = type("S", (), {"policies_dir": ROOT / "policies"})()
            runtime = Runtime(settings, policies, store, systems)
            app = create_graphql_app(runtime) if graphql else actors_only(systems)
            server = uvicorn.Server(
                uvicorn.Config(
                    app, host="127.0.0.1", port=port, log_level="warning", access_log=False
                )
            )
            await server.serve()

    anyio.run(main, backend_options={"use_uvloop": event_loop() == "uvloop"})


def actors_only(systems: Any) -> Any:
    """The four reads through the actors, without GraphQL: where the gateway's time goes."""
    from actors.messages import GetCases, GetCustomers, GetSubscriptions, Priority
    from canonical import System

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if p)

        async def ask(system: System, message: Any) -> Any:
            return await systems[system].ask(message, priority=Priority.INTERACTIVE, timeout=5.0)

        erp, crm, subscriptions, cases = await asyncio.gather(
            ask(System.ERP, GetCustomers((query["erp"],))),
            ask(System.CRM, GetCustomers((query["crm"],))),
            ask(System.BILLING, GetSubscriptions((query["billing"],))),
            ask(System.SUPPORT, GetCases((query["support"],))),
        )
        body = orjson.dumps(
            {
                "erp": len(erp),
                "crm": len(crm),
                "subscriptions": len(subscriptions.get(query["billing"], ())),
                "cases": len(cases.get(query["support"], ())),
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


# ---------------------------------------------------------------- child: floor


def run_floor(port: int, urls: dict[str, str]) -> None:
    import base64
    from urllib.parse import quote

    import uvicorn

    from actors.crm import ACCOUNT_FIELDS
    from crosswalk.gc_settings import tune_gc

    # the same collector settings as the gateway's process (``crosswalk serve`` applies
    # them), so the floor differs from it only in the code a request runs
    tune_gc()

    def query_url(soql: str) -> str:
        return f"/services/data/v60.0/query?q={quote(soql, safe='')}"

    sessions: dict[str, aiohttp.ClientSession] = {}
    auth = {
        "erp": "Basic " + base64.b64encode(b"sandbox:sandbox").decode(),
        "billing": "Bearer sk_test_crosswalk",
        "crm": "Bearer 00DSANDBOX!crosswalk",
        "support": "Basic " + base64.b64encode(b"agent@example.com/token:sandbox").decode(),
    }

    def session(system: str) -> aiohttp.ClientSession:
        if system not in sessions:
            sessions[system] = aiohttp.ClientSession(
                urls[system],
                connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=30),
                headers={"Authorization": auth[system], "Accept": "application/json"},
            )
        return sessions[system]

    async def get(system: str, path: str, params: dict[str, str]) -> Any:
        async with session(system).get(path, params=params) as response:
            body = await response.read()
            if response.status >= 400:
                return {"error": response.status}
            return orjson.loads(body)

    async def post(system: str, path: str, payload: Any) -> Any:
        async with session(system).post(
            path, data=orjson.dumps(payload), headers={"Content-Type": "application/json"}
        ) as response:
            body = await response.read()
            if response.status >= 400:
                return {"error": response.status}
            return orjson.loads(body)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if p)
        bp, account, cus, org = query["erp"], query["crm"], query["billing"], query["support"]
        # the CRM read the connector makes: accounts and billing contacts in one composite
        accounts = f"SELECT {', '.join(ACCOUNT_FIELDS)} FROM Account WHERE Id IN ('{account}')"
        contacts = (
            f"SELECT AccountId, Email FROM Contact WHERE (AccountId IN ('{account}')) "
            "AND Crosswalk_Key__c LIKE '%-billing'"
        )
        composite = {
            "allOrNone": False,
            "compositeRequest": [
                {"method": "GET", "url": query_url(accounts), "referenceId": "accounts"},
                {"method": "GET", "url": query_url(contacts), "referenceId": "contacts"},
            ],
        }
        results = await asyncio.gather(
            get(
                "erp",
                "/sap/opu/odata/sap/API_BUSINESS_PARTNER/A_BusinessPartner",
                {
                    "$filter": f"BusinessPartner eq '{bp}'",
                    "$expand": "to_BusinessPartnerAddress,to_BusinessPartnerTax,"
                    "to_Customer/to_CustomerSalesArea",
                    "$format": "json",
                },
            ),
            post("crm", "/services/data/v60.0/composite", composite),
            get("billing", "/v1/subscriptions", {"customer": cus, "status": "all", "limit": "100"}),
            get("support", f"/api/v2/organizations/{org}/tickets", {"page[size]": "100"}),
        )
        body = orjson.dumps(dict(zip(SYSTEMS, results, strict=True)))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop=event_loop(),
    )


# ---------------------------------------------------------------- load generation


def py_spy(output: Path | None, pid: int, seconds: float) -> subprocess.Popen[bytes] | None:
    """Record ``pid`` with py-spy (speedscope format) for ``seconds``; None without a path."""
    if output is None:
        return None
    spy = str(Path(sys.executable).with_name("py-spy"))
    command = [spy, "record", "--format", "speedscope", "--nonblocking", "--duration"]
    return subprocess.Popen(
        [*command, str(max(1, int(seconds))), "--pid", str(pid), "-o", str(output)]
    )


@dataclasses.dataclass
class Target:
    name: str
    pid: int
    request: Callable[[aiohttp.ClientSession, int], Awaitable[bool]]


async def saturate(
    target: Target, concurrency: int, seconds: float
) -> tuple[float, float, int, int]:
    """(requests per second, serving CPU ms per request, failed, requests sent in all)."""
    done = failed = 0
    stop = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        for i in range(concurrency):  # warm connections
            await target.request(http, i)
        cpu0, t0 = cpu_seconds(target.pid), time.perf_counter()

        async def client(index: int) -> None:
            nonlocal done, failed
            i = index
            while time.perf_counter() < stop:
                ok = await target.request(http, i)
                done += 1
                failed += not ok
                i += concurrency

        await asyncio.gather(*(client(i) for i in range(concurrency)))
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds(target.pid) - cpu0
    return done / elapsed, cpu * 1000 / max(done, 1), failed, done + concurrency


async def fixed_rate(target: Target, rate: float, seconds: float) -> tuple[float, float, int]:
    """(p50 ms, p99 ms, failed requests) with requests started at ``rate`` per second."""
    latencies: list[float] = []
    failed = 0
    total = int(rate * seconds)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        for i in range(8):
            await target.request(http, i)
        start = time.perf_counter()

        async def one(i: int) -> None:
            nonlocal failed
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            t = time.perf_counter()
            ok = await target.request(http, i)
            latencies.append((time.perf_counter() - t) * 1000)
            failed += not ok

        await asyncio.gather(*(one(i) for i in range(total)))
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return statistics.median(latencies), p99, failed


async def wait_ready(url: str, seconds: float = 60.0) -> None:
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url) as response:
                    await response.read()
                    return
            except aiohttp.ClientError:
                if time.perf_counter() > deadline:
                    raise
                await asyncio.sleep(0.1)


async def chaos(urls: dict[str, str], system: str, settings: dict[str, Any]) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.put(f"{urls[system]}/_sandbox/chaos", json=settings) as response,
    ):
        response.raise_for_status()


async def upstream_calls(urls: dict[str, str]) -> dict[str, int]:
    """Each sandbox system's own count of vendor calls received so far."""
    counts: dict[str, int] = {}
    async with aiohttp.ClientSession() as http:
        for system, url in urls.items():
            async with http.get(f"{url}/_sandbox/stats") as response:
                counts[system] = int(orjson.loads(await response.read())["requests"])
    return counts


async def bench(args: argparse.Namespace) -> None:
    tmp = tempfile.mkdtemp(prefix="bench360-")
    ports = [free_port() for _ in SYSTEMS]
    urls = {s: f"http://127.0.0.1:{p}" for s, p in zip(SYSTEMS, ports, strict=True)}
    gateway_port, floor_port = free_port(), free_port()
    children = [spawn(["sandbox", tmp, str(args.customers), *map(str, ports)])]
    try:
        for url in urls.values():
            await wait_ready(f"{url}/_sandbox/chaos")
        for system in SYSTEMS:
            await chaos(urls, system, {"latency_ms": [args.latency_ms, args.latency_ms]})
        url_args = [f"{s}={u}" for s, u in urls.items()]
        gateway = spawn(["gateway", tmp, str(gateway_port), *url_args])
        floor = spawn(["floor", str(floor_port), *url_args])
        actors_port = free_port()
        actors = spawn(["actors", tmp, str(actors_port), *url_args])
        children += [gateway, floor, actors]
        gateway_url = f"http://127.0.0.1:{gateway_port}/graphql"
        probe = f"/?erp=1&crm={PROBE_CRM_ID}&billing=1&support=1"
        await wait_ready(f"http://127.0.0.1:{floor_port}{probe}")
        await wait_ready(gateway_url, 120)
        await wait_ready(f"http://127.0.0.1:{actors_port}{probe}", 120)

        headers = {"Authorization": f"Bearer {PORTAL_KEY}", "Content-Type": "application/json"}
        # enough distinct customers that concurrent requests rarely ask for the same one:
        # the actors share identical concurrent reads, which the floor cannot do
        nodes: list[dict[str, Any]] = []
        after: str | None = None
        async with aiohttp.ClientSession() as http:
            while len(nodes) < args.customers:
                page_query = {
                    "query": "query($after: String) { customers(first: 100, after: $after) "
                    "{ pageInfo { endCursor hasNextPage } nodes { identity "
                    "{ canonicalId erp billing crm support } } } }",
                    "variables": {"after": after},
                }
                async with http.post(
                    gateway_url, data=orjson.dumps(page_query), headers=headers
                ) as response:
                    page = orjson.loads(await response.read())["data"]["customers"]
                nodes += page["nodes"]
                after = page["pageInfo"]["endCursor"]
                if not page["pageInfo"]["hasNextPage"]:
                    break
        identities = [n["identity"] for n in nodes if all(n["identity"][s] for s in SYSTEMS)]
        print(
            f"{len(identities)} fully linked customers, {args.latency_ms} ms per vendor call, "
            f"every server on {event_loop()}"
        )

        bodies = [
            orjson.dumps({"query": QUERY, "variables": {"id": i["canonicalId"]}})
            for i in identities
        ]
        floor_paths = ["/?" + "&".join(f"{s}={i[s]}" for s in SYSTEMS) for i in identities]

        errors_seen: list[Any] = []

        async def via_gateway(http: aiohttp.ClientSession, i: int) -> bool:
            async with http.post(
                gateway_url, data=bodies[i % len(bodies)], headers=headers
            ) as response:
                payload = orjson.loads(await response.read())
                customer = (payload.get("data") or {}).get("customer")
                if customer is None and not errors_seen:
                    errors_seen.append(payload.get("errors"))
                    print(f"  first failed answer: {payload.get('errors')}")
                return response.status == 200 and customer is not None

        async def via_floor(http: aiohttp.ClientSession, i: int) -> bool:
            url = f"http://127.0.0.1:{floor_port}{floor_paths[i % len(floor_paths)]}"
            async with http.get(url) as response:
                await response.read()
                return response.status == 200

        async def via_actors(http: aiohttp.ClientSession, i: int) -> bool:
            url = f"http://127.0.0.1:{actors_port}{floor_paths[i % len(floor_paths)]}"
            async with http.get(url) as response:
                await response.read()
                return response.status == 200

        targets = [
            Target("gateway (GraphQL)", gateway.pid, via_gateway),
            Target("floor (no GraphQL)", floor.pid, via_floor),
            Target("actors, no GraphQL", actors.pid, via_actors),
        ]
        results: dict[str, dict[str, float]] = {}
        for target in targets:
            before = await upstream_calls(urls)
            # profiling the gateway's saturation phase costs it CPU: compare ratios only
            # between runs without --py-spy
            spy = py_spy(args.py_spy, target.pid, args.seconds) if target is targets[0] else None
            rps, cpu_ms, failed, requests = await saturate(target, args.concurrency, args.seconds)
            if spy is not None:
                await asyncio.to_thread(spy.wait, 60)
            after = await upstream_calls(urls)
            per_request = {s: round((after[s] - before[s]) / max(requests, 1), 2) for s in SYSTEMS}
            print(f"{target.name:20} upstream calls per request ~ {per_request}")
            p50, p99, failed_rate = await fixed_rate(target, args.rate, args.seconds)
            results[target.name] = {"rps": rps, "cpu": cpu_ms, "p50": p50, "p99": p99}
            print(
                f"{target.name:20} saturation x{args.concurrency}: {rps:7.1f} req/s, "
                f"{cpu_ms:5.2f} ms CPU/req ({failed} failed) | at {args.rate:.0f} req/s: "
                f"p50 {p50:6.2f} ms, p99 {p99:6.2f} ms ({failed_rate} failed)"
            )
        gw, fl = results["gateway (GraphQL)"], results["floor (no GraphQL)"]
        ac = results["actors, no GraphQL"]
        print(
            f"gateway CPU per request = actors and connectors {ac['cpu']:.2f} ms "
            f"+ GraphQL layer {gw['cpu'] - ac['cpu']:.2f} ms; floor {fl['cpu']:.2f} ms"
        )
        print(
            f"gateway / floor: CPU per request x{gw['cpu'] / fl['cpu']:.2f} (target <= 2), "
            f"latency overhead p50 {gw['p50'] - fl['p50']:+.2f} ms (target <= 2), "
            f"p99 {gw['p99'] - fl['p99']:+.2f} ms (target <= 10)"
        )

        await chaos(urls, "billing", {"outage": True})
        async with aiohttp.ClientSession() as http:
            for i in range(20):  # open billing's breaker
                await via_gateway(http, i)
        p50, p99, failed = await fixed_rate(targets[0], args.rate, args.seconds)
        print(
            f"{'gateway, billing down':20} at {args.rate:.0f} req/s: p50 {p50:6.2f} ms, "
            f"p99 {p99:6.2f} ms ({failed} without a customer) -> p99 change vs healthy "
            f"{p99 - gw['p99']:+.2f} ms (target: no rise)"
        )
        p50, p99, failed = await fixed_rate(targets[1], args.rate, args.seconds)
        print(
            f"{'floor, billing down':20} at {args.rate:.0f} req/s: p50 {p50:6.2f} ms, "
            f"p99 {p99:6.2f} ms"
        )
    finally:
        for child in reversed(children):
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("sandbox", "gateway", "actors", "floor"):
        role, rest = sys.argv[1], sys.argv[2:]
        if role == "sandbox":
            run_sandbox(rest[0], int(rest[1]), [int(p) for p in rest[2:]])
        elif role in ("gateway", "actors"):
            urls = dict(a.split("=", 1) for a in rest[2:])
            run_gateway(rest[0], int(rest[1]), urls, graphql=role == "gateway")
        else:
            run_floor(int(rest[0]), dict(a.split("=", 1) for a in rest[1:]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=50.0, help="fixed request rate")
    parser.add_argument("--latency-ms", type=int, default=10, help="sandbox latency per call")
    parser.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        help="record the gateway with py-spy during its saturation phase (speedscope file)",
    )
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop of every serving process (the same for the gateway and the floor)",
    )
    args = parser.parse_args()
    os.environ[LOOP_ENV] = args.loop  # inherited by the child processes
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
