"""What each ``crosswalk`` subcommand does. Parsing lives in ``crosswalk.cli``; ``up``
(five supervised processes) in ``crosswalk.up``."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.abc

from crosswalk.gc_settings import tune_gc
from crosswalk.process import LOOP, die_with_parent, wait_for_signal
from crosswalk.up import cmd_up
from sandbox.app import SYSTEMS

__all__ = [
    "cmd_outbox",
    "cmd_policies",
    "cmd_reconcile",
    "cmd_sandbox",
    "cmd_schema",
    "cmd_serve",
    "cmd_sync",
    "cmd_up",
]

# ---------------------------------------------------------------------- sandbox


def _sandbox_configs(args: argparse.Namespace, systems: Sequence[str]) -> list[object]:
    from sandbox.app import SandboxConfig

    return [
        SandboxConfig.for_system(
            system,
            port=getattr(args, f"{system}_port"),
            gateway_url=None if args.no_webhooks else args.gateway_url,
            host=args.host,
            data_dir=args.data_dir,
            customers=args.customers,
            seed=args.seed,
            fresh=args.fresh,
        )
        for system in systems
    ]


def cmd_sandbox(args: argparse.Namespace) -> int:
    from gateway.observability.logs import configure_logging
    from sandbox.app import SandboxConfig
    from sandbox.runner import serve_systems, write_manifest

    die_with_parent()
    configure_logging()
    systems = args.only or list(SYSTEMS)
    configs = [c for c in _sandbox_configs(args, systems) if isinstance(c, SandboxConfig)]
    write_manifest(configs[0])

    async def run() -> None:
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_for_signal, stop)
            async with anyio.create_task_group() as servers:
                await servers.start(serve_systems, configs, stop)
                for config in configs:
                    print(f"sandbox {config.system:<8} {config.base_url}", flush=True)
            # serve_systems returns once every server has shut down gracefully
            tg.cancel_scope.cancel()

    anyio.run(run, backend_options=LOOP)
    return 0


# ---------------------------------------------------------------------- serve


def _settings(args: argparse.Namespace) -> object:
    from gateway.settings import Settings

    return Settings(
        host=args.host,
        port=args.port,
        var_dir=args.var_dir,
        policies_dir=args.policies,
        store_url=getattr(args, "store", "") or "",
        bus_url=getattr(args, "bus", "") or "",
        dispatcher=not getattr(args, "no_dispatcher", False),
        profile=getattr(args, "profile", "production"),
    )


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import create_app
    from gateway.governance.errors import PolicyError
    from gateway.governance.profiles import SANDBOX, SANDBOX_WARNING
    from gateway.observability.logs import configure_logging
    from gateway.observability.tracing import configure_tracing
    from gateway.settings import Settings
    from sandbox.runner import QuietServer

    die_with_parent()
    configure_logging()
    configure_tracing()
    for system in SYSTEMS:
        url = getattr(args, f"{system}_url", None)
        if url:
            os.environ[f"CROSSWALK_{system.upper()}_URL"] = url
    settings = _settings(args)
    assert isinstance(settings, Settings)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    if settings.profile == SANDBOX:
        print(f"crosswalk: {SANDBOX_WARNING}", file=sys.stderr, flush=True)
    try:
        app = create_app(settings)
    except PolicyError as exc:
        print(f"crosswalk: {exc}", file=sys.stderr)
        if settings.profile != SANDBOX:
            print(
                "crosswalk: the production profile reads secrets only from the environment "
                "(or your own policy files); to try Crosswalk against the sandbox systems "
                "run `crosswalk up`",
                file=sys.stderr,
            )
        return 2
    tune_gc()  # the app is built and about to serve reads: see crosswalk.gc_settings
    server = QuietServer(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
    )

    ops = app.state.ops
    ops_server = (
        QuietServer(
            uvicorn.Config(
                ops.app(),
                host=ops.host,
                port=ops.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
        )
        if ops.port
        else None
    )

    async def run() -> None:
        stop = anyio.Event()

        async def stop_server() -> None:
            await stop.wait()
            server.should_exit = True
            if ops_server is not None:
                ops_server.should_exit = True

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_for_signal, stop)
            tg.start_soon(stop_server)
            if ops_server is not None:
                # /metrics and /readyz without auth, on the port [ops] names
                tg.start_soon(ops_server.serve)
            # returns after a graceful shutdown (bounded by timeout_graceful_shutdown and
            # the runtime's own grace), or at once if the server could not start
            # uvicorn raises SystemExit when start-up fails, after printing why
            with contextlib.suppress(SystemExit):
                await server.serve()
            tg.cancel_scope.cancel()

    anyio.run(run, backend_options=LOOP)
    if not server.started:
        print("crosswalk: the gateway did not start (see the error above)", file=sys.stderr)
        return 2
    return 0


# ---------------------------------------------------------------------- tools


def cmd_policies(args: argparse.Namespace) -> int:
    from gateway.governance.policies import check_policies

    problems = check_policies(args.policies, profile=args.profile)
    for problem in problems:
        print(f"crosswalk: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"policies in {args.policies}/ are valid")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from gateway.graphql import contract

    if args.action == "export":
        args.output.write_text(contract.export_schema())
        print(f"wrote {args.output}")
        return 0
    problems = contract.check_schema(args.output, args.baseline)
    for problem in problems:
        print(f"schema: {problem}", file=sys.stderr)
    return 1 if problems else 0


def cmd_outbox(args: argparse.Namespace) -> int:
    from gateway.processes import outbox_cli
    from gateway.store import open_store

    url = args.store or f"sqlite:///{args.var_dir / 'crosswalk.db'}"
    if args.action == "replay" and args.id is None and not args.all:
        print("crosswalk: outbox replay needs a dead letter ID or --all", file=sys.stderr)
        return 2
    if args.action == "discard" and (args.id is None or not (args.reason or "").strip()):
        print(
            'crosswalk: outbox discard needs a dead letter ID and --reason "why"',
            file=sys.stderr,
        )
        return 2

    async def run() -> str:
        async with open_store(url) as store:
            if args.action == "status":
                return await outbox_cli.status(store)
            if args.action == "dead":
                return await outbox_cli.dead(store)
            if args.action == "discard":
                return await outbox_cli.discard(store, args.id, reason=args.reason)
            return await outbox_cli.replay(store, args.id, all=args.all)

    print(anyio.run(run))
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """Fill the read model from the systems (resumable; see gateway.readmodel.sync)."""
    from actors import Systems
    from canonical import System
    from gateway.governance.errors import PolicyError
    from gateway.governance.policies import load_policies
    from gateway.readmodel.sync import sync
    from gateway.store import open_store

    for system in SYSTEMS:
        url = getattr(args, f"{system}_url", None)
        if url:
            os.environ[f"CROSSWALK_{system.upper()}_URL"] = url
    try:
        policies = load_policies(args.policies, profile=args.profile)
    except PolicyError as exc:
        print(f"crosswalk: {exc}", file=sys.stderr)
        return 2
    args.var_dir.mkdir(parents=True, exist_ok=True)
    url = args.store or f"sqlite:///{args.var_dir / 'crosswalk.db'}"
    only = [System(name) for name in args.system or ()]
    tune_gc()  # it reads every record through the actors: see crosswalk.gc_settings

    async def run() -> dict[System, str | None]:
        async with open_store(url) as store, Systems(policies.systems) as systems:
            return await sync(store, systems, policies, only)

    try:
        errors = anyio.run(run, backend_options=LOOP)
    except KeyboardInterrupt:
        print("\ncrosswalk: sync stopped; run it again to resume", file=sys.stderr)
        return 130
    return 1 if any(errors.values()) else 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Find drift across the four systems; with --repair write the owners' fixes."""
    import json
    import uuid

    from actors import Systems
    from actors.messages import Priority
    from gateway.governance.errors import PolicyError
    from gateway.governance.policies import load_policies
    from gateway.processes.reconcile import run_reconciliation
    from gateway.readmodel.feeds import Feeds, system_feeds
    from gateway.readmodel.model import ReadModel
    from gateway.readmodel.quota import Quota
    from gateway.readmodel.sync import ProgressBar
    from gateway.store import StoreError, open_store

    profile = args.profile or (
        "sandbox" if (args.var_dir / "sandbox" / "drift-manifest.json").exists() else "production"
    )
    try:
        policies = load_policies(args.policies, profile=profile)
    except PolicyError as exc:
        print(f"crosswalk: {exc}", file=sys.stderr)
        return 2
    url = args.store or f"sqlite:///{args.var_dir / 'crosswalk.db'}"
    correlation = f"reconcile-{uuid.uuid4().hex[:12]}"
    tune_gc()  # it reads every system through the actors: see crosswalk.gc_settings

    async def run() -> Any:
        async with open_store(url) as store, Systems(policies.systems) as systems:
            model = ReadModel(store, system_feeds())
            await model.load()
            quota = Quota(
                {s: p.rate.per_second for s, p in policies.systems.systems.items()},
                policies.readmodel.quota,
            )
            feeds = Feeds(
                model, systems, quota, policies.readmodel, store_events=False,
                purpose="reconcile", priority=Priority.BATCH,
            )  # fmt: skip
            bar = ProgressBar(sys.stderr) if sys.stderr.isatty() and not args.json else None
            return await run_reconciliation(
                model, feeds, policies.ownership, repair_drift=args.repair,
                correlation_id=correlation, progress=bar, trigger="cli",
            )  # fmt: skip

    try:
        report = anyio.run(run, backend_options=LOOP)
    except (OSError, StoreError) as exc:
        print(f"crosswalk: reconciliation failed: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"findings": [f.to_json() for f in report.findings]}, indent=2))
    else:
        _print_findings(report)
    for system, reason in report.incomplete.items():
        print(f"crosswalk: {system} could not be read to its end: {reason}", file=sys.stderr)
    if report.incomplete:
        return 2
    return 1 if report.findings else 0


def _print_findings(report: Any) -> None:
    seconds = report.finished_at - report.started_at
    print(f"{report.customers} customers compared in {seconds:.1f} s: "
          f"{len(report.findings)} finding(s)")  # fmt: skip
    if report.findings:
        print(f"{'kind':<26} {'erp_bp':<9} {'system':<8} {'record':<20} {'expected':<28} actual")
        for f in report.findings:
            print(
                f"{f.kind:<26} {f.erp_bp or '-':<9} {f.system:<8} {f.record_id or '-':<20} "
                f"{(f.expected or '-')[:28]:<28} {f.actual or '-'}"
            )
    for finding, operation in report.repaired:
        print(f"repair: {finding.kind} {finding.system} {finding.record_id or finding.erp_bp} "
              f"-> operation {operation}")  # fmt: skip
    orphans = [f for f in report.findings if not f.repairable]
    if report.repaired or orphans:
        print(f"{len(report.repaired)} repair(s) written to the outbox; "
              f"{len(orphans)} orphan(s) left for a person to decide")  # fmt: skip
