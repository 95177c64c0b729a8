"""``crosswalk up``: the four sandbox systems and the gateway as five supervised processes."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import anyio
import anyio.abc

from crosswalk.process import DEMO_KEYS, wait_for_signal
from sandbox.app import SYSTEMS

__all__ = ["cmd_up"]


def cmd_up(args: argparse.Namespace) -> int:
    """Supervise five processes: four sandbox systems and the gateway."""
    from gateway.governance.profiles import SANDBOX_WARNING
    from sandbox.app import DEFAULT_WEBHOOK_SECRETS

    python = sys.executable
    var_dir: Path = args.var_dir
    gateway_url = f"http://{args.host}:{args.port}"
    common = ["--customers", str(args.customers), "--seed", str(args.seed)]
    if args.fresh:
        common.append("--fresh")
    ports = {s: getattr(args, f"{s}_port") for s in SYSTEMS}
    commands: list[tuple[str, list[str], str]] = []
    for system in SYSTEMS:
        cmd = [python, "-m", "crosswalk", "sandbox", "--only", system]
        cmd += ["--data-dir", str(var_dir / "sandbox"), "--gateway-url", gateway_url]
        cmd += [f"--{system}-port", str(ports[system]), *common]
        commands.append(
            (f"sandbox {system}", cmd, f"http://127.0.0.1:{ports[system]}/_sandbox/chaos")
        )
    serve = [python, "-m", "crosswalk", "serve", "--host", args.host, "--port", str(args.port)]
    serve += ["--var-dir", str(var_dir), "--policies", str(args.policies)]
    if args.store:
        serve += ["--store", args.store]
    if args.bus:
        serve += ["--bus", args.bus]
    # the sandbox systems take the committed demo secrets: say so before anything starts
    serve += ["--profile", "sandbox"]
    print(f"crosswalk: {SANDBOX_WARNING}", flush=True)
    for system in SYSTEMS:
        serve += [f"--{system}-url", f"http://127.0.0.1:{ports[system]}"]
    commands.append(("gateway", serve, f"{gateway_url}/healthz"))

    env = {**os.environ, "CROSSWALK_SUPERVISED": "1"}

    async def run() -> int:
        import aiohttp

        stop = anyio.Event()
        processes: list[tuple[str, anyio.abc.Process]] = []
        code = 0
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_for_signal, stop)
            try:
                for name, cmd, _ in commands:
                    proc = await anyio.open_process(
                        cmd, stdin=None, stdout=None, stderr=None, env=env
                    )
                    processes.append((name, proc))
                async with aiohttp.ClientSession() as session:
                    for (name, _, probe), (_, proc) in zip(commands, processes, strict=True):
                        if not await _wait_ready(session, probe, proc, stop):
                            if not stop.is_set():
                                print(f"crosswalk: {name} did not start", file=sys.stderr)
                                code = 1
                            stop.set()
                            break
                if not stop.is_set():
                    _banner(args, ports, gateway_url, DEFAULT_WEBHOOK_SECRETS)
                    async with anyio.create_task_group() as watch:
                        for name, proc in processes:
                            watch.start_soon(_watch_child, name, proc, stop)
                        await stop.wait()
                        watch.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    await _stop_children(processes)
                tg.cancel_scope.cancel()
        print("crosswalk: stopped", flush=True)
        return code

    return anyio.run(run)


async def _wait_ready(
    session: object, url: str, proc: anyio.abc.Process, stop: anyio.Event
) -> bool:
    import aiohttp

    assert isinstance(session, aiohttp.ClientSession)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not stop.is_set():
        if proc.returncode is not None:
            return False
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                if resp.status == 200:
                    return True
        await anyio.sleep(0.1)
    return False


async def _watch_child(name: str, proc: anyio.abc.Process, stop: anyio.Event) -> None:
    code = await proc.wait()
    if not stop.is_set():
        print(f"crosswalk: {name} exited with {code}; stopping everything", file=sys.stderr)
        stop.set()


async def _stop_children(processes: list[tuple[str, anyio.abc.Process]]) -> None:
    for _, proc in processes:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
    with anyio.move_on_after(15):
        for _, proc in processes:
            await proc.wait()
    for name, proc in processes:
        if proc.returncode is None:
            print(f"crosswalk: {name} did not stop in time; killing it", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


def _banner(
    args: argparse.Namespace, ports: dict[str, int], gateway_url: str, secrets: dict[str, str]
) -> None:
    lines = [
        "",
        "Crosswalk is up.",
        f"  gateway   {gateway_url}/graphql   (GraphiQL in a browser)",
        f"            {gateway_url}/healthz  {gateway_url}/readyz  {gateway_url}/metrics",
        f"  ERP       http://127.0.0.1:{ports['erp']}/sap/opu/odata/sap/API_BUSINESS_PARTNER"
        "   Basic sandbox:sandbox",
        f"  billing   http://127.0.0.1:{ports['billing']}/v1   Bearer sk_test_crosswalk",
        f"  CRM       http://127.0.0.1:{ports['crm']}/services/data/v60.0"
        "   Bearer 00DSANDBOX!crosswalk",
        f"  support   http://127.0.0.1:{ports['support']}/api/v2"
        "   Basic agent@example.com/token:sandbox",
        "  demo keys (Authorization: Bearer <key>):",
        *(f"    {key:<16} {what}" for key, what in DEMO_KEYS.items()),
        "  DEMO SECRETS (sandbox profile; sandbox -> gateway, in policies/webhooks.toml):",
        *(f"    {system:<8} {secret}" for system, secret in secrets.items()),
        f"  data      {args.var_dir}/  (sandbox/*.db, crosswalk.db, sandbox/drift-manifest.json)",
        "Press Ctrl-C to stop.",
        "",
    ]
    print("\n".join(lines), flush=True)
