"""``Query.reconciliation``: the latest reconciliation runs and their findings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from gateway.graphql.context import Context, require_scope
from gateway.graphql.paging import Connection, paginate
from gateway.graphql.types import resolver
from gateway.store import DriftFinding, ReconciliationRun

__all__ = ["ReconciliationQuery"]

#: findings one run may page through (a run finding more reports them all in the store)
MAX_FINDINGS = 100_000


@strawberry.type(
    name="DriftFinding",
    description="One drift: the drift manifest's shape, and the repair written for it.",
)
class DriftFindingRecord:
    kind: str = strawberry.field(
        description="`<field>_mismatch`, `missing_in_<system>` or `orphan_<system>`."
    )
    erp_bp: str | None = strawberry.field(description="The ERP business partner it concerns.")
    system: str = strawberry.field(description="The system holding the drifted record.")
    record_id: str | None = strawberry.field(description="That record's id there.")
    field: str | None = strawberry.field(description="The canonical field that differs.")
    expected: str | None = strawberry.field(description="The owning system's value.")
    actual: str | None = strawberry.field(description="The value found.")
    repair: str | None = strawberry.field(
        description="The repair operation written for it (`Query.operation`), if any."
    )

    @classmethod
    def of(cls, f: DriftFinding) -> DriftFindingRecord:
        return cls(
            kind=f.kind,
            erp_bp=f.erp_bp,
            system=f.system,
            record_id=f.record_id,
            field=f.field,
            expected=f.expected,
            actual=f.actual,
            repair=f.repair,
        )


@strawberry.type(description="One reconciliation run across the four systems.")
class ReconciliationReport:
    run: strawberry.Private[ReconciliationRun]
    id: strawberry.ID = strawberry.field(description="The run's number.")
    started_at: datetime = strawberry.field(description="When it began.")
    finished_at: datetime = strawberry.field(description="When it ended.")
    trigger: str = strawberry.field(description="`cli`, `schedule`.")
    customers: int = strawberry.field(description="ERP customers compared.")
    findings_count: int = strawberry.field(description="Drift found.")
    repaired: int = strawberry.field(description="Repairs written to the outbox.")
    incomplete: list[str] = strawberry.field(
        description="Systems whose feeds could not be read to the end, with why (their "
        "findings may be out of date)."
    )

    @resolver("The run's findings, in order.")
    async def findings(
        self,
        info: Info[Context, None],
        first: Annotated[int, strawberry.argument(description="Page size, at most 100.")] = 20,
        after: Annotated[
            str | None, strawberry.argument(description="`pageInfo.endCursor` of a page.")
        ] = None,
    ) -> Connection[DriftFindingRecord]:
        page = await info.context.runtime.store.reconciliation_findings(
            self.run.id, limit=MAX_FINDINGS
        )
        items = [DriftFindingRecord.of(f) for f in page.items]
        return paginate(items, first, after, kind="finding")

    @classmethod
    def of(cls, run: ReconciliationRun) -> ReconciliationReport:
        return cls(
            run=run,
            id=strawberry.ID(str(run.id)),
            started_at=run.started_at,
            finished_at=run.finished_at,
            trigger=run.trigger,
            customers=run.customers,
            findings_count=run.findings,
            repaired=run.repaired,
            incomplete=[f"{system}: {why}" for system, why in run.incomplete.items()],
        )


@strawberry.type
class ReconciliationQuery:
    @resolver(
        "The latest reconciliation runs, newest first (`crosswalk reconcile`, and the "
        "schedule in policies/schedules.toml). Needs system:read."
    )
    async def reconciliation(
        self,
        info: Info[Context, None],
        last: Annotated[int, strawberry.argument(description="How many runs, at most 20.")] = 1,
    ) -> list[ReconciliationReport]:
        context = require_scope(info, "system:read")
        runs = await context.runtime.store.reconciliation_runs(limit=max(0, min(last, 20)))
        return [ReconciliationReport.of(run) for run in runs]
