"""``Mutation``: the governed writes (names fixed by the schema contract) and dead-letter replay.

Every write mutation: checks the client's scope, takes the Idempotency-Key from the
``Idempotency-Key`` header or the ``idempotencyKey`` argument, validates the input
against canonical rules (``VALIDATION_FAILED`` with ``extensions.fields: [{field,
reason}]``, nothing written), then writes the operation, its saga, its first outbox
message and the idempotency record in one transaction and answers the ``Operation`` at
once. ``gateway.processes.write_path`` documents the idempotency semantics.
"""

from __future__ import annotations

import dataclasses
import enum
from decimal import Decimal
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from actors.errors import CrosswalkSystemError
from gateway.graphql.context import Context, require_scope
from gateway.graphql.errors import CodedError, ErrorCode, from_system_error
from gateway.graphql.operations import Operation, typed
from gateway.processes.context import Caller
from gateway.processes.errors import CommandError, ValidationFailed
from gateway.processes.flows import COMMANDS
from gateway.processes.replay import discard_dead_letter, replay_dead_letter
from gateway.processes.write_path import write_path_for

__all__ = [
    "CaseCreditInput",
    "CloseOpportunityInput",
    "EscalateCaseInput",
    "Mutation",
    "OnboardCustomerInput",
    "OpenCaseInput",
    "OrderLineInput",
    "RenewSubscriptionInput",
    "ReplayResult",
    "ResolveCaseInput",
]

_KEY_HELP = (
    "Idempotency key (IETF draft; or the Idempotency-Key header). The same key and input "
    "within 24 h answers the first response; another input answers IDEMPOTENCY_MISMATCH."
)

IdempotencyKeyArg = Annotated[str | None, strawberry.argument(description=_KEY_HELP)]


@strawberry.input(description="A new customer, created in ERP, CRM, billing and support.")
class OnboardCustomerInput:
    name: str = strawberry.field(description="Display name.")
    tax_id: str = strawberry.field(description="Tax id in its country's format (e.g. DE123456789).")
    country: str = strawberry.field(description="ISO 3166-1 alpha-2 country code.")
    payment_terms: str = strawberry.field(description="SAP payment terms key, e.g. NT30.")
    legal_name: str | None = strawberry.field(
        default=None, description="Legal entity name ending in a legal form; default: name."
    )
    currency: str | None = strawberry.field(default=None, description="Default: the country's.")
    email: str | None = strawberry.field(default=None, description="Billing e-mail.")
    segment: str | None = strawberry.field(default=None, description="CRM segment.")
    industry: str | None = strawberry.field(default=None, description="CRM industry.")
    owner: str | None = strawberry.field(default=None, description="CRM account owner.")
    external_id: str | None = strawberry.field(
        default=None, description="ERP BusinessPartnerIDByExtSystem (max 20); default: generated."
    )
    credit_status: str | None = strawberry.field(
        default=None, description="Credit status; owned by the ERP (field ownership applies)."
    )
    support_tier: str | None = strawberry.field(
        default=None, description="Support tier; owned by support (field ownership applies)."
    )


@strawberry.input(description="One product line of a deal.")
class OrderLineInput:
    product: str = strawberry.field(description="Canonical product code, e.g. CW-CORE.")
    quantity: int = strawberry.field(default=1, description="Quantity, 1 to 10000.")


@strawberry.input(description="A CRM opportunity to close as won (quote-to-cash).")
class CloseOpportunityInput:
    opportunity_id: strawberry.ID = strawberry.field(description="CRM opportunity id (006...).")
    lines: list[OrderLineInput] | None = strawberry.field(
        default=None, description="Product lines; default: the opportunity's products, one each."
    )
    payment_terms: str | None = strawberry.field(
        default=None, description="Payment terms override; owned by the ERP (ownership applies)."
    )


@strawberry.input(description="A support case to open for a customer (case-to-resolution).")
class OpenCaseInput:
    customer_id: strawberry.ID = strawberry.field(
        description="Canonical id or erp:/billing:/crm:/support: id."
    )
    subject: str = strawberry.field(description="Subject line.")
    description: str = strawberry.field(description="What happened.")
    type: str | None = strawberry.field(
        default=None, description="problem, incident, question (default) or task."
    )
    priority: str | None = strawberry.field(
        default=None,
        description="Requested priority; the entitlement's SLA priority applies at least.",
    )


@strawberry.input(description="A support case to escalate (case-to-resolution).")
class EscalateCaseInput:
    customer_id: strawberry.ID = strawberry.field(
        description="Canonical id or erp:/billing:/crm:/support: id."
    )
    case_id: strawberry.ID = strawberry.field(description="Support ticket id.")
    reason: str = strawberry.field(description="Why it is escalated.")


@strawberry.input(description="A credit granted with a case's resolution.")
class CaseCreditInput:
    invoice_id: strawberry.ID = strawberry.field(
        description="The billing invoice credited (in_...): finalized, open or paid."
    )
    amount: Decimal = strawberry.field(
        description="Amount credited, in the invoice's currency (at most its total)."
    )
    reason: str = strawberry.field(
        default="product_unsatisfactory",
        description="Stripe's reason: duplicate, fraudulent, order_change or "
        "product_unsatisfactory.",
    )


@strawberry.input(description="A support case to resolve (case-to-resolution's end).")
class ResolveCaseInput:
    customer_id: strawberry.ID = strawberry.field(
        description="Canonical id or erp:/billing:/crm:/support: id."
    )
    case_id: strawberry.ID = strawberry.field(description="Support ticket id.")
    resolution: str = strawberry.field(description="What was done: the ticket's last comment.")
    credit: CaseCreditInput | None = strawberry.field(
        default=None,
        description="A credit for a billing dispute: a Stripe credit note and an ERP credit "
        "memo request.",
    )


@strawberry.input(description="A billing subscription to renew (renewal-to-revenue).")
class RenewSubscriptionInput:
    customer_id: strawberry.ID = strawberry.field(
        description="Canonical id or erp:/billing:/crm:/support: id."
    )
    subscription_id: strawberry.ID = strawberry.field(description="Billing subscription (sub_...).")
    opportunity_id: strawberry.ID | None = strawberry.field(
        default=None, description="The CRM renewal opportunity to close, if any."
    )


@strawberry.type(description="The outcome of replaying a dead letter.")
class ReplayResult:
    replayed: bool = strawberry.field(
        description="False if the message was not a dead letter (already replayed or unknown)."
    )
    dead_letter_id: strawberry.ID = strawberry.field(description="The message replayed.")
    operation: Operation | None = strawberry.field(description="Its operation, as it now stands.")


@strawberry.type(description="The outcome of discarding a dead letter.")
class DiscardResult:
    discarded: bool = strawberry.field(
        description="False if the message was not a dead letter (already handled or unknown)."
    )
    dead_letter_id: strawberry.ID = strawberry.field(description="The message discarded.")
    operation: Operation | None = strawberry.field(
        description="Its operation, as it now stands (FAILED once its step is discarded)."
    )


def _dead_letter_id(id: strawberry.ID) -> int:
    try:
        return int(id)
    except ValueError:
        raise CodedError(
            ErrorCode.VALIDATION_FAILED,
            f"{id!r} is not a dead letter id (see Query.deadLetters).",
            extensions={"fields": [{"field": "id", "reason": "not a dead letter id"}]},
        ) from None


def input_to_json(value: Any) -> Any:
    """A strawberry input as plain JSON with the schema's camelCase names, unset left out."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if item is None or item is strawberry.UNSET:
                continue
            out[_camel(f.name)] = input_to_json(item)
        return out
    if isinstance(value, list):
        return [input_to_json(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)  # exact, and JSON (the idempotency fingerprint) has no decimals
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


async def submit(
    info: Info[Any, Any], kind: str, data: Any, idempotency_key: str | None
) -> Operation:
    """Run one governed mutation for the request's client (see the module docstring)."""
    context: Context = require_scope(info, COMMANDS[kind].scope)
    header = context.idempotency_key
    if idempotency_key and header and idempotency_key != header:
        raise CodedError(
            ErrorCode.VALIDATION_FAILED,
            "The Idempotency-Key header and the idempotencyKey argument differ; send one.",
            extensions={"fields": [{"field": "idempotencyKey", "reason": "differs from header"}]},
        )
    key = idempotency_key or header
    if key is not None and not 1 <= len(key) <= 255:
        raise CodedError(
            ErrorCode.VALIDATION_FAILED,
            "An idempotency key must be 1 to 255 characters.",
            extensions={"fields": [{"field": "idempotencyKey", "reason": "1 to 255 characters"}]},
        )
    system = context.client.system
    caller = Caller(client_id=context.client.id, system=system.value if system else None)
    try:
        view = await write_path_for(context.runtime).submit(
            kind,
            input_to_json(data),
            caller=caller,
            idempotency_key=key,
            correlation_id=context.correlation_id,
        )
    except ValidationFailed as exc:
        raise CodedError(
            ErrorCode.VALIDATION_FAILED,
            exc.message,
            extensions={"fields": [p.to_json() for p in exc.problems]},
        ) from None
    except CommandError as exc:
        raise CodedError(ErrorCode(exc.code), exc.message) from None
    except CrosswalkSystemError as exc:
        raise from_system_error(exc) from None
    return Operation.from_view(view)


@strawberry.type(description="Governed writes across ERP, billing, CRM and support.")
class Mutation:
    @typed(
        strawberry.mutation(
            description="Onboard a customer: ERP business partner, CRM account, billing "
            "customer, support organization (needs customer:write)."
        )
    )
    async def onboard_customer(
        self,
        info: Info[Any, Any],
        input: OnboardCustomerInput,
        idempotency_key: IdempotencyKeyArg = None,
    ) -> Operation:
        return await submit(info, "onboardCustomer", input, idempotency_key)

    @typed(
        strawberry.mutation(
            description="Close a CRM opportunity as won: ERP sales order, billing subscription, "
            "support entitlement, CRM stamp with the order number (needs opportunity:write)."
        )
    )
    async def close_opportunity(
        self,
        info: Info[Any, Any],
        input: CloseOpportunityInput,
        idempotency_key: IdempotencyKeyArg = None,
    ) -> Operation:
        return await submit(info, "closeOpportunity", input, idempotency_key)

    @typed(
        strawberry.mutation(
            description="Open a support case with the entitlement's SLA priority, enriched with "
            "invoice and order status (needs case:write)."
        )
    )
    async def open_case(
        self,
        info: Info[Any, Any],
        input: OpenCaseInput,
        idempotency_key: IdempotencyKeyArg = None,
    ) -> Operation:
        return await submit(info, "openCase", input, idempotency_key)

    @typed(
        strawberry.mutation(
            description="Escalate a support case to the entitlement's escalation priority "
            "(needs case:write)."
        )
    )
    async def escalate_case(
        self,
        info: Info[Any, Any],
        input: EscalateCaseInput,
        idempotency_key: IdempotencyKeyArg = None,
    ) -> Operation:
        return await submit(info, "escalateCase", input, idempotency_key)

    @typed(
        strawberry.mutation(
            description="Resolve a support case: with a credit, a Stripe credit note and an "
            "ERP credit memo request first; then the ticket solved with the resolution "
            "(needs case:write). The CRM account gets a Task from the support desk's event."
        )
    )
    async def resolve_case(
        self,
        info: Info[Any, Any],
        input: ResolveCaseInput,
        idempotency_key: IdempotencyKeyArg = None,
    ) -> Operation:
        return await submit(info, "resolveCase", input, idempotency_key)

    @typed(
        strawberry.mutation(
            description="Renew a subscription: billing renewal, ERP order, entitlement "
            "extended, CRM renewal closed (needs subscription:write)."
        )
    )
    async def renew_subscription(
        self,
        info: Info[Any, Any],
        input: RenewSubscriptionInput,
        idempotency_key: IdempotencyKeyArg = None,
    ) -> Operation:
        return await submit(info, "renewSubscription", input, idempotency_key)

    @typed(
        strawberry.mutation(
            description="Send a dead letter back to the queue; its operation resumes "
            "(needs deadletter:replay)."
        )
    )
    async def replay_dead_letter(self, info: Info[Any, Any], id: strawberry.ID) -> ReplayResult:
        context = require_scope(info, "deadletter:replay")
        message_id = _dead_letter_id(id)
        replayed, view = await replay_dead_letter(context.runtime.store, message_id)
        return ReplayResult(
            replayed=replayed,
            dead_letter_id=id,
            operation=Operation.from_view(view) if view else None,
        )

    @typed(
        strawberry.mutation(
            description="Give up a dead letter for good (needs ops): its customer's queue "
            "moves on and its operation ends FAILED; nothing is undone in the systems. "
            "The reason is kept in the audit trail with the client that discarded it."
        )
    )
    async def discard_dead_letter(
        self, info: Info[Any, Any], id: strawberry.ID, reason: str
    ) -> DiscardResult:
        context = require_scope(info, "ops")
        message_id = _dead_letter_id(id)
        if not reason.strip():
            raise CodedError(
                ErrorCode.VALIDATION_FAILED,
                "A discard needs a reason: say why the step must not be retried.",
                extensions={"fields": [{"field": "reason", "reason": "empty"}]},
            )
        discarded, view = await discard_dead_letter(
            context.runtime.store, message_id, actor=context.client.id, reason=reason
        )
        return DiscardResult(
            discarded=discarded,
            dead_letter_id=id,
            operation=Operation.from_view(view) if view else None,
        )
