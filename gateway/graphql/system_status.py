"""GraphQL types of ``Query.systems``: each system's health as its actor sees it, its
quota use, the read model's copy of it and its service level objectives."""

from __future__ import annotations

from datetime import datetime

import strawberry

from gateway.graphql.types import SystemName

__all__ = ["FeedStatus", "QuotaUse", "SloObjective", "SloState", "SyncState", "SystemStatus"]

field = strawberry.field


@strawberry.type(description="One change feed of a system, as the catch-up last read it.")
class FeedStatus:
    feed: str = field(description="The feed's name (e.g. `tickets`, `orders`, `events`).")
    cursor: str | None = field(description="Where the next read continues (the system's own).")
    complete_at: datetime | None = field(
        description="The last moment every change of this feed was known applied."
    )
    last_pass_at: datetime | None = field(description="When the last catch-up pass began.")
    last_error: str | None = field(description="Why the last pass stopped short, if it did.")


@strawberry.type(description="The read model's copy of one system.")
class SyncState:
    loaded: bool = field(
        description="Whether the initial load finished (every feed read to its end once)."
    )
    complete_at: datetime | None = field(
        description="The last moment every feed of the system was known complete: the "
        "records' age runs from here."
    )
    lag_seconds: float | None = field(
        description="Seconds since `completeAt` (null before the initial load finished)."
    )
    last_event_at: datetime | None = field(
        description="When the last webhook event of this system was applied."
    )
    events_applied: int = field(description="Webhook events applied since the gateway started.")
    records: int = field(description="Records held (deleted ones not counted).")
    feeds: list[FeedStatus] = field(description="Each change feed's position.")


@strawberry.type(description="One service level objective of policies/slo.toml now.")
class SloObjective:
    objective: str = field(
        description="availability (share of upstream calls that succeed) or "
        "sync_lag_seconds (age of the read model's copy)."
    )
    target: float = field(description="The objective's value in policies/slo.toml.")
    value: float | None = field(description="The current value; null before any measurement.")
    burn_rate_5m: float | None = field(
        description="Error rate over the last 5 minutes divided by the error budget "
        "(1 - target); null without traffic or for thresholds like sync_lag_seconds."
    )
    burn_rate_1h: float | None = field(description="The same over the last hour.")
    ok: bool = field(description="Whether the current value meets the objective.")


@strawberry.type(description="A system's service level objectives.")
class SloState:
    ok: bool = field(description="Whether every objective is met.")
    objectives: list[SloObjective] = field(description="Each objective.")


@strawberry.type(description="A system's quota use over the last minute.")
class QuotaUse:
    calls_last_minute: int = field(description="Upstream calls made in the last 60 s.")
    limit_per_minute: float = field(description="The policy rate times 60.")
    used: float = field(description="calls_last_minute / limit_per_minute (1 = all of it).")


@strawberry.type(description="Health of one system as its actor sees it.")
class SystemStatus:
    system: SystemName = field(description="The system.")
    healthy: bool | None = field(
        description="Outcome of the last health ping; null before the first."
    )
    health_detail: str = field(description="Why it is unhealthy, or the ping's round trip.")
    breaker: str = field(description="Circuit breaker state: closed, open or half_open.")
    queue_depth: int = field(description="Messages waiting in the actor's mailbox.")
    p50_latency_ms: float | None = field(
        description="Median latency of recent upstream calls in milliseconds."
    )
    p99_latency_ms: float | None = field(
        default=None,
        description="99th percentile latency of recent upstream calls in milliseconds.",
    )
    quota: QuotaUse | None = field(
        default=None,
        description="Upstream calls in the last minute against the policy rate "
        "(policies/systems.toml).",
    )
    sync: SyncState | None = field(
        default=None,
        description="How current the read model's copy of this system is (null when the "
        "gateway runs without a read model).",
    )
    slo: SloState | None = field(
        default=None,
        description="Its objectives of policies/slo.toml (null when it has none).",
    )
