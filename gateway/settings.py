"""Process settings: where things listen and where state lives. Flags override environment.

Environment variables (all optional):

==========================  ===========================  ==================================
variable                    default                      meaning
==========================  ===========================  ==================================
CROSSWALK_HOST              127.0.0.1                    gateway bind address
CROSSWALK_PORT              8000                         gateway port
CROSSWALK_STORE             sqlite:///var/crosswalk.db   store URL (sqlite:/// or postgresql://)
CROSSWALK_BUS               (in-process)                 bus between replicas: nats://host:4222
                                                         (NATS JetStream) or memory://
CROSSWALK_POLICIES          policies                     policy folder
CROSSWALK_VAR               var                          state folder (sandbox data, reports)
CROSSWALK_PROFILE           production                   production: secrets from the
                                                         environment; sandbox: demo secrets
==========================  ===========================  ==================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = field(default_factory=lambda: os.environ.get("CROSSWALK_HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: int(os.environ.get("CROSSWALK_PORT", "8000")))
    var_dir: Path = field(default_factory=lambda: Path(os.environ.get("CROSSWALK_VAR", "var")))
    policies_dir: Path = field(
        default_factory=lambda: Path(os.environ.get("CROSSWALK_POLICIES", "policies"))
    )
    store_url: str = field(default_factory=lambda: os.environ.get("CROSSWALK_STORE", ""))
    #: the bus between replicas sharing the store ("": in-process, this replica alone)
    bus_url: str = field(default_factory=lambda: os.environ.get("CROSSWALK_BUS", ""))
    #: run the outbox dispatcher in this process
    dispatcher: bool = True
    #: keep the read model current in this process (events consumer, catch-up loops);
    #: reads use whatever it holds either way
    feeds: bool = True
    #: "production" (secrets from the environment) or "sandbox" (the committed demo
    #: secrets fill in): gateway.governance.profiles
    profile: str = field(default_factory=lambda: os.environ.get("CROSSWALK_PROFILE", "production"))
    #: seconds between discovery syncs of the cross-reference registry (0: only at start)
    discovery_interval: float = 600.0

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.var_dir / 'crosswalk.db'}"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"
