"""The audit trail in GraphQL: ``Query.trace`` and ``Query.auditLog``.

``trace(correlationId:)`` is one request's (or background round's) timeline: the mutation
accepted, each saga step, each vendor call with its status and latency, each webhook event
received, in time order (vendor calls are written in batches, so their ids come later
than the steps they served; ``at`` is when each began). ``trace(businessKey:)`` finds the
correlation ids whose entries name a business key (an invoice ``in_...``, an ERP order or
billing document number, an entitlement, case or operation id) and merges their
timelines. A client with ``ops`` sees every entry; one with ``operation:read`` only the
entries its own requests caused.

``auditLog(customerId:)`` pages through a customer's history, newest first: the entries
naming its canonical id or any of its system ids (needs ``ops``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from canonical import System
from gateway.graphql.context import Context, require_scope
from gateway.graphql.errors import CodedError, ErrorCode
from gateway.graphql.identity import resolve_customer
from gateway.graphql.paging import (
    Connection,
    Edge,
    PageInfo,
    check_first,
    decode_cursor,
    encode_cursor,
)
from gateway.graphql.types import SystemName, resolver
from gateway.store import AuditEntry, audit_keys
from gateway.store.errors import StoreError

__all__ = ["MAX_TRACE_CORRELATIONS", "MAX_TRACE_ENTRIES", "AuditEvent", "AuditQuery"]

#: the most correlation ids a business-key trace merges (the most recently active)
MAX_TRACE_CORRELATIONS = 20
#: the most entries one trace answers (the oldest)
MAX_TRACE_ENTRIES = 1000

_SYSTEMS = {s.value: s for s in System}


def _system(entry: AuditEntry) -> System | None:
    detail = entry.detail if isinstance(entry.detail, dict) else {}
    named = detail.get("system")
    if isinstance(named, str) and named in _SYSTEMS:
        return _SYSTEMS[named]
    if entry.actor.startswith("webhook:"):
        return _SYSTEMS.get(entry.actor.partition(":")[2])
    return None


def _outcome(entry: AuditEntry) -> str | None:
    detail = entry.detail if isinstance(entry.detail, dict) else {}
    for field in ("outcome", "status"):
        value = detail.get(field)
        if isinstance(value, str):
            return value.lower()
    if entry.action.startswith("mutation."):
        return "accepted"
    if entry.action.startswith("webhook."):
        return "ignored" if entry.action == "webhook.echo_ignored" else "received"
    return None


@strawberry.type(description="One entry of the audit trail.")
class AuditEvent:
    id: strawberry.ID = strawberry.field(description="The entry's id; ids grow in commit order.")
    at: datetime = strawberry.field(description="When it happened.")
    actor: str = strawberry.field(
        description="Who caused it: a client id, `webhook:<system>`, `operator`, or a "
        "Crosswalk process (`crosswalk:discovery`, `crosswalk:catch-up`; `crosswalk` when "
        "unknown)."
    )
    action: str = strawberry.field(
        description="What happened: `mutation.<name>`, `saga.step`, `vendor.call`, "
        "`webhook.received`, `outbox.replay`, ..."
    )
    system: SystemName | None = strawberry.field(
        description="The system it concerns, when it concerns one."
    )
    subject: str = strawberry.field(
        description="What it is about: `operation:<id>`, `event:<system>:<id>`, or "
        "`<system>:<METHOD> <path>` for a vendor call."
    )
    outcome: str | None = strawberry.field(
        description="How it ended: for a vendor call `ok`, `client_error`, `throttled`, "
        "`server_error`, `timeout`, `unavailable`, `too_large` or `cancelled`; for a saga "
        "step its status (`succeeded`, `failed`, `skipped`)."
    )
    detail: JSON | None = strawberry.field(
        description="Everything recorded with it (a vendor call: system, method, path, "
        "status, latency_ms, attempt, outcome)."
    )
    correlation_id: str | None = strawberry.field(
        description="The correlation id of the work it belongs to."
    )

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEvent:
        return cls(
            id=strawberry.ID(str(entry.id)),
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            system=_system(entry),
            subject=entry.subject,
            outcome=_outcome(entry),
            detail=entry.detail,
            correlation_id=entry.correlation_id,
        )


def _viewer(info: Info[Context, None]) -> tuple[Context, str | None]:
    """The request's context and whose entries it may see (``None``: everyone's)."""
    context: Context = info.context
    if context.has_scope("ops"):
        return context, None
    require_scope(info, "operation:read")
    return context, context.client.id


def _unavailable(exc: StoreError) -> CodedError:
    return CodedError(
        ErrorCode.SYSTEM_UNAVAILABLE,
        f"The audit trail could not be read: {exc}",
        system="store",
    )


@strawberry.type(description="Reads of the audit trail.")
class AuditQuery:
    @resolver(
        "The timeline of one correlation id, or of every correlation whose entries name a "
        "business key (an invoice `in_...`, an ERP order or billing document number, an "
        f"entitlement, case or operation id: the {MAX_TRACE_CORRELATIONS} most recently "
        "active), in time order (`at`, then `id`): mutations accepted, saga steps, vendor "
        f"calls, webhook events. At most {MAX_TRACE_ENTRIES} entries (the oldest). Give "
        "exactly one of the two arguments. Needs ops (every entry) or operation:read (only "
        "the entries your own requests caused)."
    )
    async def trace(
        self,
        info: Info[Context, None],
        correlation_id: Annotated[
            str | None, strawberry.argument(description="A correlation id (X-Correlation-ID).")
        ] = None,
        business_key: Annotated[
            str | None,
            strawberry.argument(
                description="An invoice, order, case, entitlement or operation id."
            ),
        ] = None,
    ) -> list[AuditEvent]:
        context, actor = _viewer(info)
        if (correlation_id is None) == (business_key is None):
            raise CodedError(
                ErrorCode.VALIDATION_FAILED,
                "Give exactly one of correlationId and businessKey.",
                extensions={"fields": ["correlationId", "businessKey"]},
            )
        store = context.runtime.store
        try:
            if correlation_id is not None:
                ids = [correlation_id]
            else:
                assert business_key is not None
                key = business_key.strip()
                keys = audit_keys(key, None) or [key]
                ids = await store.audit_correlations(
                    keys, actor=actor, limit=MAX_TRACE_CORRELATIONS
                )
            entries = await store.audit_trace(ids, actor=actor, limit=MAX_TRACE_ENTRIES)
        except StoreError as exc:
            raise _unavailable(exc) from exc
        return [AuditEvent.of(e) for e in entries]

    @resolver(
        "A customer's history, newest first: the audit entries that name its canonical id "
        "or any of its system ids (mutations, saga steps, vendor calls, webhook events). "
        "Needs ops.",
        name="auditLog",
    )
    async def audit_log(
        self,
        info: Info[Context, None],
        customer_id: Annotated[
            strawberry.ID,
            strawberry.argument(description="The canonical id or a system id (`erp:...`)."),
        ],
        first: Annotated[int, strawberry.argument(description="Page size, at most 100.")] = 20,
        after: Annotated[
            str | None, strawberry.argument(description="`pageInfo.endCursor` of a page.")
        ] = None,
    ) -> Connection[AuditEvent]:
        context = require_scope(info, "ops")
        check_first(first)
        before = None
        if after is not None:
            position = decode_cursor(after, "audit")
            if not position.isdigit():
                raise CodedError(ErrorCode.VALIDATION_FAILED, "Malformed cursor.")
            before = int(position)
        record = await resolve_customer(context, str(customer_id))
        keys: list[str] = [record.canonical_id, *record.aliases, *record.ids().values()]
        try:
            entries = await context.runtime.store.audit_by_keys(
                keys, before=before, limit=first + 1
            )
        except StoreError as exc:
            raise _unavailable(exc) from exc
        has_next = len(entries) > first
        edges = [
            Edge(cursor=encode_cursor("audit", e.id), node=AuditEvent.of(e))
            for e in entries[:first]
        ]
        return Connection(
            edges=edges,
            nodes=[e.node for e in edges],
            page_info=PageInfo(
                has_next_page=has_next,
                has_previous_page=after is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            total_count=None,
        )
