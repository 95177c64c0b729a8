"""The ``crosswalk`` command (a contract: scripts and operators rely on its names).

    crosswalk up                      four sandbox systems + the gateway, seeded demo data
                                      (sandbox profile: demo secrets from policies/)
    crosswalk serve                   the gateway alone (production profile: every secret
                                      from the environment; --profile sandbox)
    crosswalk sandbox                 the four sandbox systems alone
    crosswalk outbox status|dead|replay ID|--all|discard ID --reason R
    crosswalk sync [--system S] [--profile sandbox]
    crosswalk reconcile [--repair] [--json]
    crosswalk policies check
    crosswalk schema export|check

Every port can be set by flag or environment variable (``CROSSWALK_PORT``,
``CROSSWALK_SANDBOX_ERP_PORT`` ...). Exit codes: 0 success, 1 a check found problems,
2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from sandbox.app import SYSTEMS

__all__ = ["main"]


def _add_sandbox_flags(p: argparse.ArgumentParser) -> None:
    from sandbox.app import DEFAULT_PORTS

    for system in SYSTEMS:
        env = f"CROSSWALK_SANDBOX_{system.upper()}_PORT"
        p.add_argument(
            f"--{system}-port",
            type=int,
            default=int(os.environ.get(env, DEFAULT_PORTS[system])),
            help=f"{system} sandbox port (env {env}, default %(default)s)",
        )
    p.add_argument(
        "--customers", type=int, default=200, help="demo customers to seed (default 200)"
    )
    p.add_argument("--seed", type=int, default=42, help="demo data seed (default 42)")
    p.add_argument("--fresh", action="store_true", help="wipe the sandbox databases and seed again")


def _add_bus_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bus",
        default=os.environ.get("CROSSWALK_BUS", ""),
        help="bus between gateway replicas sharing one store: nats://host:4222 (NATS "
        "JetStream; env CROSSWALK_BUS); default in-process (one replica)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crosswalk", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    host = os.environ.get("CROSSWALK_HOST", "127.0.0.1")
    port = int(os.environ.get("CROSSWALK_PORT", "8000"))
    var_dir = Path(os.environ.get("CROSSWALK_VAR", "var"))
    profile = os.environ.get("CROSSWALK_PROFILE")
    policies = Path(os.environ.get("CROSSWALK_POLICIES", "policies"))

    up = sub.add_parser("up", help="run the four sandbox systems and the gateway")
    up.add_argument("--host", default=host)
    up.add_argument("--port", type=int, default=port, help="gateway port (env CROSSWALK_PORT)")
    up.add_argument("--var-dir", type=Path, default=var_dir, help="state folder (default var)")
    up.add_argument("--policies", type=Path, default=policies)
    up.add_argument(
        "--store",
        default=os.environ.get("CROSSWALK_STORE", ""),
        help="the gateway's store URL (env CROSSWALK_STORE; default sqlite in --var-dir)",
    )
    _add_bus_flag(up)
    _add_sandbox_flags(up)

    serve = sub.add_parser("serve", help="run the gateway alone")
    serve.add_argument("--host", default=host)
    serve.add_argument("--port", type=int, default=port, help="gateway port (env CROSSWALK_PORT)")
    serve.add_argument("--var-dir", type=Path, default=var_dir)
    serve.add_argument("--policies", type=Path, default=policies)
    serve.add_argument(
        "--store",
        default=os.environ.get("CROSSWALK_STORE", ""),
        help="store URL (env CROSSWALK_STORE)",
    )
    _add_bus_flag(serve)
    serve.add_argument(
        "--no-dispatcher", action="store_true", help="accept mutations but deliver nothing"
    )
    serve.add_argument(
        "--profile",
        choices=("production", "sandbox"),
        default=profile or "production",
        help="production (default; env CROSSWALK_PROFILE): every webhook secret and vendor "
        "credential from the environment, a missing one stops start-up; sandbox: the demo "
        "secrets in policies/ fill in (crosswalk up)",
    )
    for system in SYSTEMS:
        serve.add_argument(
            f"--{system}-url",
            default=None,
            help=f"{system} base URL (env CROSSWALK_{system.upper()}_URL; default from policies)",
        )

    sandbox = sub.add_parser("sandbox", help="run the four sandbox systems alone")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument(
        "--data-dir", type=Path, default=var_dir / "sandbox", help="default var/sandbox"
    )
    sandbox.add_argument(
        "--only", choices=SYSTEMS, action="append", help="run only this system (repeatable)"
    )
    sandbox.add_argument(
        "--gateway-url",
        default=os.environ.get("CROSSWALK_GATEWAY_URL", f"http://{host}:{port}"),
        help="where webhooks are pushed (POST <url>/webhooks/<system>)",
    )
    sandbox.add_argument("--no-webhooks", action="store_true", help="push no events")
    _add_sandbox_flags(sandbox)

    outbox = sub.add_parser("outbox", help="inspect the outbox, replay or discard dead letters")
    outbox.add_argument("action", choices=("status", "dead", "replay", "discard"))
    outbox.add_argument("id", nargs="?", type=int, help="dead letter id to replay or discard")
    outbox.add_argument("--reason", help="why a dead letter is discarded (kept in the audit)")
    outbox.add_argument("--all", action="store_true", help="replay every dead letter")
    outbox.add_argument("--store", default=os.environ.get("CROSSWALK_STORE", ""))
    outbox.add_argument("--var-dir", type=Path, default=var_dir)

    sync = sub.add_parser(
        "sync", help="fill the read model from the systems' list endpoints (resumable)"
    )
    sync.add_argument(
        "--system", choices=SYSTEMS, action="append", help="only this system (repeatable)"
    )
    sync.add_argument("--var-dir", type=Path, default=var_dir)
    sync.add_argument("--store", default=os.environ.get("CROSSWALK_STORE", ""))
    sync.add_argument("--policies", type=Path, default=policies)
    sync.add_argument(
        "--profile",
        choices=("production", "sandbox"),
        default=profile or "production",
        help="production (default): credentials from the environment; sandbox: the demo "
        "credentials in policies/ (the systems `crosswalk up` runs)",
    )
    for system in SYSTEMS:
        sync.add_argument(f"--{system}-url", default=None, help=f"{system} base URL")

    reconcile = sub.add_parser(
        "reconcile",
        help="find drift across the four systems (exit 0 none, 1 found, 2 error); "
        "--repair writes the owners' fixes",
    )
    reconcile.add_argument(
        "--repair", action="store_true", help="write corrective outbox messages from the owner"
    )
    reconcile.add_argument("--json", action="store_true", help='print {"findings": [...]}')
    reconcile.add_argument("--var-dir", type=Path, default=var_dir)
    reconcile.add_argument("--store", default=os.environ.get("CROSSWALK_STORE", ""))
    reconcile.add_argument("--policies", type=Path, default=policies)
    reconcile.add_argument(
        "--profile",
        choices=("production", "sandbox"),
        default=profile,
        help="credentials as this profile reads them (env CROSSWALK_PROFILE; default: "
        "sandbox when the var dir holds `crosswalk up`'s sandbox, else production)",
    )

    pol = sub.add_parser("policies", help="validate the policy files")
    pol.add_argument("action", choices=("check",))
    pol.add_argument("--policies", type=Path, default=policies)
    pol.add_argument(
        "--profile",
        choices=("production", "sandbox"),
        default=profile or "sandbox",
        help="check secrets as this profile would read them (default sandbox; env "
        "CROSSWALK_PROFILE): production needs every secret in the environment",
    )

    schema = sub.add_parser("schema", help="the GraphQL schema contract")
    schema.add_argument("action", choices=("export", "check"))
    schema.add_argument(
        "--output", type=Path, default=Path("schema.graphql"), help="the checked-in schema"
    )
    schema.add_argument(
        "--baseline",
        type=Path,
        default=Path("schema.baseline.graphql"),
        help="the last released schema: breaking changes against it need a @deprecated period",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from crosswalk import commands

    handler = getattr(commands, f"cmd_{args.command}")
    code: int = handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
