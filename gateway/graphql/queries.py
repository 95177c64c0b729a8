"""The read side of ``Query``: ``customer``, ``customers`` and ``systems``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from canonical import System
from gateway.graphql.context import Context, require_scope
from gateway.graphql.customer import Customer360
from gateway.graphql.errors import CodedError, ErrorCode
from gateway.graphql.identity import parse_customer_id, resolve_customer
from gateway.graphql.paging import (
    Connection,
    Edge,
    PageInfo,
    check_first,
    decode_cursor,
    encode_cursor,
)
from gateway.graphql.system_status import (
    FeedStatus,
    QuotaUse,
    SloObjective,
    SloState,
    SyncState,
    SystemStatus,
)
from gateway.graphql.types import resolver
from gateway.observability.slo import system_slos
from gateway.readmodel.model import ReadModel
from gateway.store.errors import StoreError
from gateway.store.records import XRefRecord

__all__ = ["ReadQuery"]

_PREFIXES = frozenset(s.value for s in System)
#: how many registry matches a search looks through for one page
_SEARCH_WINDOW = 1000


async def _search(context: Context, text: str, first: int, after: str | None) -> list[XRefRecord]:
    text = text.strip()
    if text.partition(":")[0].lower() in _PREFIXES:
        # a system id written erp:..., billing:...: one exact customer
        parse_customer_id(text)
        return [await resolve_customer(context, text)] if after is None else []
    records: list[XRefRecord] = await context.runtime.store.search_xref(text, limit=_SEARCH_WINDOW)
    if after is not None:
        records = [r for r in records if r.canonical_id > after]
    return records[: first + 1]


@strawberry.type(description="Reads: the customer 360 and the health of the systems.")
class ReadQuery:
    @resolver(
        "One customer by its canonical id (`cw_...`) or any system's id written "
        "`erp:<BusinessPartner>`, `billing:<cus_...>`, `crm:<001...>` or `support:<org id>`. "
        "Needs customer:read."
    )
    async def customer(
        self,
        info: Info[Context, None],
        id: Annotated[strawberry.ID, strawberry.argument(description="The customer's id.")],
        max_age: Annotated[
            int | None,
            strawberry.argument(
                description="Freshest data wanted, in seconds: fields whose read-model data "
                "is older are refreshed from their system (if its breaker and quota allow "
                "within the deadline; else answered stale with `freshness` saying why). "
                "Without it the freshness budgets of policies/readmodel.toml apply. Needs "
                "quota:spend, since it spends the systems' call quotas."
            ),
        ] = None,
    ) -> Customer360 | None:
        context = require_scope(info, "customer:read")
        if max_age is not None:
            require_scope(info, "quota:spend")
            if max_age < 0:
                raise CodedError(
                    ErrorCode.VALIDATION_FAILED,
                    f"maxAge must be 0 or more seconds, got {max_age}",
                    extensions={"field": "maxAge"},
                )
            loaders = context.loaders
            loaders.max_age = (
                float(max_age) if loaders.max_age is None else min(loaders.max_age, max_age)
            )
        return Customer360.of(await resolve_customer(context, str(id)))

    @resolver(
        "Customers whose name contains `search`, or whose canonical or system id starts "
        "with it (`erp:1000042` finds exactly that customer); all customers without "
        "`search`. Ordered by canonical id. Needs customer:read."
    )
    async def customers(
        self,
        info: Info[Context, None],
        search: Annotated[
            str | None, strawberry.argument(description="Name part or id to look for.")
        ] = None,
        first: Annotated[int, strawberry.argument(description="Page size, at most 100.")] = 20,
        after: Annotated[
            str | None, strawberry.argument(description="`pageInfo.endCursor` of a page.")
        ] = None,
    ) -> Connection[Customer360] | None:
        context = require_scope(info, "customer:read")
        check_first(first)
        position = decode_cursor(after, "customer") if after is not None else None
        try:
            if search:
                records = await _search(context, search, first, position)
            else:
                page = await context.runtime.store.list_xrefs(limit=first + 1, after=position)
                records = list(page.items)
        except StoreError as exc:
            raise CodedError(
                ErrorCode.SYSTEM_UNAVAILABLE,
                f"The cross-reference registry could not be read: {exc}",
                system="store",
            ) from exc
        has_next = len(records) > first
        records = records[:first]
        edges = [
            Edge(cursor=encode_cursor("customer", r.canonical_id), node=Customer360.of(r))
            for r in records
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

    @resolver(
        "Each system's health, circuit breaker state, queue depth and latency. "
        "Needs system:read."
    )
    def systems(self, info: Info[Context, None]) -> list[SystemStatus] | None:
        context = require_scope(info, "system:read")
        return [
            SystemStatus(
                system=System(state.system),
                healthy=state.healthy,
                health_detail=state.health_detail,
                breaker=state.breaker,
                queue_depth=state.queue_depth,
                p50_latency_ms=state.p50_latency_ms,
                p99_latency_ms=state.p99_latency_ms,
                quota=quota_use(context, System(state.system)),
                sync=sync_state(context, System(state.system)),
                slo=slo_state(context, System(state.system)),
            )
            for state in context.runtime.systems.states()
        ]


def _moment(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def quota_use(context: Context, system: System) -> QuotaUse | None:
    """Calls in the last minute against the policy rate (from the SLO call counters)."""
    counters = getattr(context.runtime, "slo", None)
    systems = getattr(getattr(context.runtime, "policies", None), "systems", None)
    if counters is None or systems is None or system not in systems.systems:
        return None
    calls, _ = counters.window(str(system), 60.0)
    limit = systems.systems[system].rate.per_second * 60
    return QuotaUse(calls_last_minute=calls, limit_per_minute=limit, used=round(calls / limit, 4))


def slo_state(context: Context, system: System) -> SloState | None:
    """What ``Query.systems`` shows of ``system``'s objectives (policies/slo.toml)."""
    policy = getattr(context.runtime.policies, "slo", None)  # runtimes assembled without
    if policy is None:
        return None
    model: ReadModel | None = getattr(context.runtime, "read_model", None)
    lag = None if model is None else model.lag(system)
    statuses = system_slos(policy, getattr(context.runtime, "slo", None), system, lag)
    if not statuses:
        return None
    return SloState(
        ok=all(s.ok for s in statuses),
        objectives=[
            SloObjective(
                objective=s.objective,
                target=s.target,
                value=s.value,
                burn_rate_5m=s.burn_rates.get("5m"),
                burn_rate_1h=s.burn_rates.get("1h"),
                ok=s.ok,
            )
            for s in statuses
        ],
    )


def sync_state(context: Context, system: System) -> SyncState | None:
    """What ``Query.systems`` shows of the read model's copy of ``system``."""
    model: ReadModel | None = getattr(context.runtime, "read_model", None)
    if model is None:
        return None
    complete = model.complete_at(system)
    feeds = [state for (s, _), state in model.feeds.items() if s is system]
    return SyncState(
        loaded=complete is not None,
        complete_at=_moment(complete),
        lag_seconds=model.lag(system),
        last_event_at=_moment(model.last_event_at.get(system)),
        events_applied=model.events_applied.get(system, 0),
        records=model.count(system),
        feeds=[
            FeedStatus(
                feed=state.feed,
                cursor=state.cursor,
                complete_at=_moment(state.complete_at),
                last_pass_at=_moment(state.last_pass_at),
                last_error=state.last_error,
            )
            for state in feeds
        ],
    )
