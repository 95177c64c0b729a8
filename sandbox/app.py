"""What every sandbox system has in common: its config, state, lifespan and app factory.

A vendor package (``sandbox/erp/`` ...) supplies its routes, its ``Dialect`` (how it
says errors and rate limits), a ``seed`` function that writes the demo data in its own
shape, and the ``Signer`` of its webhooks; ``build_app`` assembles the Starlette app::

    app = build_app(SYSTEM, config, routes=routes, dialect=Dialect(), seed=seed, signer=signer)

Handlers reach the state through ``state_of(request)``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import BaseRoute

from sandbox.chaos import Chaos, ChaosMiddleware, Dialect
from sandbox.demo import DemoData, generate
from sandbox.docstore import DocStore
from sandbox.webhooks import Signer, WebhookSender, WebhookStats

__all__ = [
    "DEFAULT_PORTS",
    "DEFAULT_WEBHOOK_SECRETS",
    "SYSTEMS",
    "SandboxConfig",
    "SandboxState",
    "build_app",
    "state_of",
]

SYSTEMS = ("erp", "billing", "crm", "support")
DEFAULT_PORTS = {"erp": 8101, "billing": 8102, "crm": 8103, "support": 8104}
#: shared secrets the sandbox signs webhooks with; the gateway reads the same values from
#: policies/webhooks.toml. Sandbox values only: never real secrets.
DEFAULT_WEBHOOK_SECRETS = {
    "erp": "erp_sandbox_webhook_secret",
    "billing": "whsec_crosswalk_sandbox",
    "crm": "crm_sandbox_webhook_secret",
    "support": "support_sandbox_webhook_secret",
}


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """How to run one sandbox system. Build with ``SandboxConfig.for_system("erp", ...)``."""

    system: str
    port: int
    host: str = "127.0.0.1"
    data_dir: Path = Path("var/sandbox")
    customers: int = 200
    seed: int = 42
    fresh: bool = False  # wipe the system's database and seed again at start
    webhook_url: str | None = None  # where events are pushed; None: no webhooks
    webhook_secret: str = ""

    @classmethod
    def for_system(
        cls,
        system: str,
        *,
        port: int | None = None,
        gateway_url: str | None = "http://127.0.0.1:8000",
        **kwargs: object,
    ) -> SandboxConfig:
        """Defaults for ``system``, overridable by ``CROSSWALK_SANDBOX_<SYSTEM>_PORT``."""
        if system not in SYSTEMS:
            raise ValueError(f"unknown sandbox system {system!r}; expected one of {SYSTEMS}")
        env_port = os.environ.get(f"CROSSWALK_SANDBOX_{system.upper()}_PORT")
        chosen = port if port is not None else int(env_port or DEFAULT_PORTS[system])
        url = f"{gateway_url.rstrip('/')}/webhooks/{system}" if gateway_url else None
        return cls(
            system=system,
            port=chosen,
            webhook_url=url,
            webhook_secret=DEFAULT_WEBHOOK_SECRETS[system],
            **kwargs,  # type: ignore[arg-type]
        )

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / f"{self.system}.db"


@dataclass(slots=True)
class SandboxState:
    """Everything a vendor module's handlers share."""

    config: SandboxConfig
    store: DocStore
    chaos: Chaos
    webhooks: WebhookSender
    demo: DemoData
    extra: dict[str, object] = field(default_factory=dict)  # vendor-specific in-memory state


def state_of(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


SeedFn = Callable[[SandboxState], Awaitable[None]]


def build_app(
    config: SandboxConfig,
    *,
    routes: Sequence[BaseRoute],
    dialect: Dialect,
    seed: SeedFn,
    signer: Signer,
) -> Starlette:
    chaos = Chaos()
    holder: dict[str, SandboxState] = {}

    async def reset() -> None:
        state = holder["state"]
        await state.store.clear()
        state.extra.clear()
        await seed(state)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if config.fresh and config.db_path.exists():
            for suffix in ("", "-wal", "-shm"):
                Path(f"{config.db_path}{suffix}").unlink(missing_ok=True)
        sender = WebhookSender(
            config.system, config.webhook_url, signer, active=lambda: chaos.settings.webhooks
        )
        async with DocStore(config.db_path) as store, anyio.create_task_group() as tg:
            state = SandboxState(
                config=config,
                store=store,
                chaos=chaos,
                webhooks=sender,
                demo=generate(config.customers, config.seed),
            )
            holder["state"] = state
            app.state.sandbox = state
            if store.is_empty():
                await seed(state)
            await tg.start(sender.run)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()

    def webhook_stats() -> dict[str, Any]:
        state = holder.get("state")
        return asdict(state.webhooks.stats) if state is not None else asdict(WebhookStats())

    middleware = [
        Middleware(
            ChaosMiddleware,
            dialect=dialect,
            chaos=chaos,
            on_reset=reset,
            webhook_stats=webhook_stats,
        )
    ]
    return Starlette(routes=list(routes), middleware=middleware, lifespan=lifespan)
