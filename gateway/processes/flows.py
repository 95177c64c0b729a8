"""Every flow by mutation name, with the validation that guards it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from gateway.processes.context import Accepted, CommandContext
from gateway.processes.event_flows import EVENT_FLOWS
from gateway.processes.reconcile import REPAIR_FLOWS
from gateway.processes.saga import Flow
from gateway.processes.sagas import (
    case_to_resolution,
    onboarding,
    quote_to_cash,
    renewal,
    resolve_case,
)

__all__ = ["COMMANDS", "FLOWS", "Command"]

Validator = Callable[[CommandContext, Mapping[str, Any]], Awaitable[Accepted]]


@dataclass(frozen=True, slots=True)
class Command:
    """A governed mutation: its flow, its validation and the scope it needs."""

    flow: Flow
    validate: Validator
    scope: str


COMMANDS: Mapping[str, Command] = MappingProxyType(
    {
        "onboardCustomer": Command(onboarding.FLOW, onboarding.validate, "customer:write"),
        "closeOpportunity": Command(
            quote_to_cash.FLOW, quote_to_cash.validate, "opportunity:write"
        ),
        "openCase": Command(
            case_to_resolution.OPEN_FLOW, case_to_resolution.validate_open, "case:write"
        ),
        "escalateCase": Command(
            case_to_resolution.ESCALATE_FLOW, case_to_resolution.validate_escalate, "case:write"
        ),
        "renewSubscription": Command(renewal.FLOW, renewal.validate, "subscription:write"),
        "resolveCase": Command(resolve_case.FLOW, resolve_case.validate, "case:write"),
    }
)

FLOWS: Mapping[str, Flow] = MappingProxyType(
    {**{kind: c.flow for kind, c in COMMANDS.items()}, **REPAIR_FLOWS, **EVENT_FLOWS}
)
