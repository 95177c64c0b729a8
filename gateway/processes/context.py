"""What a flow's validation may use: the store, the actors, reference data, ownership, caller."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from actors.messages import Message, Priority
from canonical import System
from gateway.governance.reference import ReferenceData
from gateway.processes.exclusive import Exclusive
from gateway.store import Store

__all__ = ["EVENTS_CLIENT", "Accepted", "ActorLike", "Caller", "CommandContext", "SystemsLike"]

#: the client id work started by the systems' own events runs under
EVENTS_CLIENT = "crosswalk-events"


class ActorLike(Protocol):
    async def ask(
        self,
        message: Message,
        *,
        priority: Priority,
        timeout: float | None = None,  # noqa: ASYNC109 - the actor's own keyword
        deadline: float | None = None,
    ) -> Any: ...


class SystemsLike(Protocol):
    """``actors.Systems`` as the write path uses it: one actor per system."""

    def __getitem__(self, system: System) -> ActorLike: ...


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent the mutation: the client id (idempotency scope, audit) and the system it
    speaks for (``policies/clients.toml`` ``system``; field ownership: a CRM widget may
    change only what the CRM owns). ``None``: an operator client that speaks for no
    system, whose writes are not limited by ownership."""

    client_id: str
    system: str | None = "crm"


@dataclass(slots=True)
class CommandContext:
    """Validation's view of the gateway; ``ask`` reads at INTERACTIVE priority."""

    store: Store
    systems: SystemsLike
    reference: ReferenceData
    caller: Caller
    owner_of: Callable[[str], str | None] = lambda _field: None
    read_timeout: float = 5.0

    async def ask(self, system: System, message: Message) -> Any:
        return await self.systems[system].ask(
            message, priority=Priority.INTERACTIVE, timeout=self.read_timeout
        )


@dataclass(frozen=True, slots=True)
class Accepted:
    """A validated mutation: the input the saga runs on and the customer it is about.

    ``canonical_id``: the customer's registry id if known (or chosen, for onboarding);
    ``links``: ids validation discovered, linked in the accepting transaction;
    ``exclusive``: a business key that only one unsettled operation may hold, checked
    again inside the accepting transaction.
    """

    input: Mapping[str, Any]
    canonical_id: str | None = None
    links: Mapping[System, str] = field(default_factory=dict)
    name: str | None = None
    exclusive: Exclusive | None = None
