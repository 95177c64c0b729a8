"""Reconciliation: find where the four systems drifted apart, and repair what an owner can.

A run first brings the read model current through each system's change feed (list and
change endpoints, never one call per customer per system), spending the ``reconcile``
share of each quota at BATCH priority, so interactive reads keep their share. It then
compares every customer across the four systems from the read model:

- ``missing_in_<system>``: an ERP business partner with no linked record in that system;
- ``orphan_<system>``: a record linked to an ERP number the ERP does not have;
- ``<field>_mismatch``: a field (``policies/ownership.toml``) whose value in a system
  differs from the value in the system that owns it, the owner's value taken as truth.

Findings have the drift manifest's shape (a contract): ``kind``, ``erp_bp``, ``system``,
``record_id``, ``field``, ``expected``, ``actual``.

``repair`` writes corrective work through the outbox, from the owner: a mismatch becomes
an ``UpdateCustomer`` of that system's record with the owner's value; a missing record is
created from the ERP's (``EnsureCustomer``, the same write onboarding makes); an orphan
is reported for a person and never deleted. Each repair is an operation of its own
(``repairDrift``), keyed by the finding, so running a repair twice writes once.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from actors.messages import EnsureCustomer, UpdateCustomer
from canonical import Customer, System, XRef
from gateway.governance.ownership import OwnershipPolicy
from gateway.processes.saga import Flow, SagaView, Step, begin_saga
from gateway.processes.signal import outbox_signal
from gateway.readmodel.codec import decode, encode
from gateway.readmodel.feeds import Feeds, Progress
from gateway.readmodel.kinds import Kind
from gateway.readmodel.model import ReadModel
from gateway.store import DriftFinding, NewAudit, Store

__all__ = [
    "REPAIR_FLOWS",
    "Finding",
    "Report",
    "find_drift",
    "find_drift_for",
    "repair",
    "run_reconciliation",
]

KIND = "repairDrift"
#: the client id repairs run under (audit trail, operation listing)
CLIENT = "crosswalk-reconcile"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    erp_bp: str | None
    system: str
    record_id: str | None
    field: str | None
    expected: str | None
    actual: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def repairable(self) -> bool:
        return not self.kind.startswith("orphan_")

    def key(self) -> str:
        """Stable id of the finding: what a repair operation is keyed by (the same drift
        found twice is repaired once; drifting again to another value is new)."""
        text = (
            f"{self.kind}|{self.erp_bp}|{self.system}|{self.record_id}|{self.field}|{self.expected}"
        )
        return hashlib.sha256(text.encode()).hexdigest()[:24]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _erp_customers(model: ReadModel) -> dict[str, Customer]:
    return {
        record_id: entry.value
        for record_id, entry in model.records(System.ERP, Kind.CUSTOMER)
        if isinstance(entry.value, Customer)
    }


def _linked(
    model: ReadModel, erp: Mapping[str, Customer], findings: list[Finding] | None
) -> dict[System, dict[str, list[Customer]]]:
    """Each other system's customers by ERP number; orphans go to ``findings``."""
    linked: dict[System, dict[str, list[Customer]]] = {}
    for system in (System.BILLING, System.CRM, System.SUPPORT):
        by_bp: dict[str, list[Customer]] = {}
        for record_id, entry in model.records(system, Kind.CUSTOMER):
            customer = entry.value
            if not isinstance(customer, Customer):
                continue
            bp = customer.xref.erp
            if bp is None or bp not in erp:
                if findings is not None:
                    findings.append(
                        Finding(f"orphan_{system}", bp, str(system), record_id, None, None, None)
                    )
                continue
            by_bp.setdefault(bp, []).append(customer)
        linked[system] = by_bp
    return linked


def _compare(
    bp: str,
    erp: Customer,
    linked: Mapping[System, Mapping[str, list[Customer]]],
    ownership: OwnershipPolicy,
) -> list[Finding]:
    findings: list[Finding] = []
    records: dict[System, Customer] = {System.ERP: erp}
    for system, by_bp in linked.items():
        found = by_bp.get(bp)
        if not found:
            missing = f"missing_in_{system}"
            findings.append(Finding(missing, bp, str(system), None, None, None, None))
        else:
            records[system] = found[0]
    for field, owner_name in ownership.customer.items():
        owner = System(owner_name)
        truth = records.get(owner)
        expected = getattr(truth, field, None) if truth is not None else None
        if expected is None:
            continue
        for system, record in records.items():
            if system is owner:
                continue
            actual = getattr(record, field, None)
            if actual is not None and actual != expected:
                findings.append(
                    Finding(
                        f"{field}_mismatch",
                        bp,
                        str(system),
                        record.id,
                        field,
                        _text(expected),
                        _text(actual),
                    )
                )
    return findings


def _order(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (f.erp_bp or "", f.system, f.kind, f.field or ""))


def find_drift(model: ReadModel, ownership: OwnershipPolicy) -> list[Finding]:
    """Every drift the read model shows (see the module docstring), in a stable order."""
    erp = _erp_customers(model)
    findings: list[Finding] = []
    linked = _linked(model, erp, findings)
    for bp in sorted(erp):
        findings.extend(_compare(bp, erp[bp], linked, ownership))
    return _order(findings)


def find_drift_for(model: ReadModel, ownership: OwnershipPolicy, bp: str) -> list[Finding]:
    """The drift of one ERP customer (no orphans: they belong to no ERP customer)."""
    entry = model.record(System.ERP, Kind.CUSTOMER, bp)
    if entry is None or not isinstance(entry.value, Customer):
        return []
    linked = {
        system: {bp: customers}
        for system, by_bp in _linked(model, {bp: entry.value}, None).items()
        if (customers := by_bp.get(bp))
    }
    for system in (System.BILLING, System.CRM, System.SUPPORT):
        linked.setdefault(system, {})
    return _order(_compare(bp, entry.value, linked, ownership))


# ------------------------------------------------------------------ repairs


def _update_message(payload: Mapping[str, Any], key: str) -> UpdateCustomer:
    return UpdateCustomer(
        idempotency_key=key, id=str(payload["id"]), changes=dict(payload["changes"])
    )


def _ensure_message(payload: Mapping[str, Any], key: str) -> EnsureCustomer:
    customer = decode(payload["customer"])
    assert isinstance(customer, Customer)
    return EnsureCustomer(idempotency_key=key, customer=customer, external_id=str(payload["erp"]))


def _record(result: Any) -> Any:
    return {"id": getattr(result, "id", None)}


def _payload(kind: str) -> Any:
    def prepare(view: SagaView) -> Any:
        return view.input if view.input.get("action") == kind else None

    return prepare


def _repair_flow(system: System) -> Flow:
    return Flow(
        kind=f"{KIND}.{system}",
        steps=(
            Step("update", system, _payload("update"), _update_message, _record),
            Step(
                "create",
                system,
                _payload("create"),
                _ensure_message,
                _record,
                links=lambda result: {system: str(result["id"])} if result.get("id") else {},
            ),
        ),
        compensation={
            "update": "nothing to undo: the record keeps its drifted value and is found again",
            "create": "nothing to undo: the customer stays missing and is found again",
        },
    )


REPAIR_FLOWS: dict[str, Flow] = {
    f"{KIND}.{system}": _repair_flow(system)
    for system in (System.ERP, System.BILLING, System.CRM, System.SUPPORT)
}


async def repair(
    store: Store, model: ReadModel, findings: list[Finding], *, correlation_id: str
) -> list[tuple[Finding, str]]:
    """Write one ``repairDrift`` operation per repairable finding not already repaired;
    returns (finding, operation id) for each written."""
    written: list[tuple[Finding, str]] = []
    for finding in findings:
        if not finding.repairable or finding.erp_bp is None:
            continue
        system = System(finding.system)
        operation_id = f"op_repair_{finding.key()}"
        if finding.kind.startswith("missing_in_"):
            entry = model.record(System.ERP, Kind.CUSTOMER, finding.erp_bp)
            if entry is None or not isinstance(entry.value, Customer):
                continue
            source: Customer = entry.value
            customer = replace(
                source,
                system=system,
                id="",
                xref=XRef(erp=finding.erp_bp, crm=source.xref.crm, billing=source.xref.billing),
            )
            data: dict[str, Any] = {
                "action": "create",
                "erp": finding.erp_bp,
                "customer": encode(customer),
                "finding": finding.to_json(),
            }
        else:
            if finding.record_id is None or finding.field is None:
                continue
            data = {
                "action": "update",
                "id": finding.record_id,
                "changes": {finding.field: finding.expected},
                "finding": finding.to_json(),
            }
        aggregate = await store.resolve(System.ERP, finding.erp_bp) or f"erp:{finding.erp_bp}"
        async with store.transaction() as tx:
            if await tx.get_operation(operation_id) is not None:
                continue  # repaired (or being repaired) already
            await begin_saga(
                tx,
                REPAIR_FLOWS[f"{KIND}.{system}"],
                operation_id=operation_id,
                correlation_id=correlation_id,
                client_id=CLIENT,
                aggregate_key=aggregate,
                input=data,
            )
            await tx.append_audit(
                NewAudit(
                    actor=CLIENT,
                    action="reconcile.repair",
                    subject=f"operation:{operation_id}",
                    correlation_id=correlation_id,
                    detail=finding.to_json(),
                )
            )
        written.append((finding, operation_id))
    if written:
        outbox_signal(store).notify()
    return written


# ------------------------------------------------------------------ a run


@dataclass(frozen=True, slots=True)
class Report:
    """One reconciliation run."""

    started_at: float
    finished_at: float
    customers: int
    findings: list[Finding]
    repaired: list[tuple[Finding, str]]
    #: systems whose feed could not be read to its end (their findings may be stale)
    incomplete: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "customers": self.customers,
            "findings": [f.to_json() for f in self.findings],
            "repaired": [{"finding": f.to_json(), "operation": op} for f, op in self.repaired],
            "incomplete": self.incomplete,
        }


async def run_reconciliation(
    model: ReadModel,
    feeds: Feeds,
    ownership: OwnershipPolicy,
    *,
    repair_drift: bool = False,
    correlation_id: str = "reconcile",
    progress: Progress | None = None,
    trigger: str | None = None,
) -> Report:
    """Bring ``model`` current through ``feeds`` (their quota share and priority), then
    compare; with ``repair_drift`` write the repairs; with ``trigger`` (``cli``,
    ``schedule``) keep the run and its findings in the store."""
    started = time.time()
    incomplete: dict[str, str] = {}
    for system in System:
        await feeds.catch_up(system, progress=progress)
        failed = [
            f"{state.feed}: {state.last_error}"
            for (s, _), state in model.feeds.items()
            if s is system and state.last_error
        ]
        if failed or model.complete_at(system) is None:
            incomplete[str(system)] = "; ".join(failed) or "not loaded"
    findings = find_drift(model, ownership)
    repaired = (
        await repair(model.store, model, findings, correlation_id=correlation_id)
        if repair_drift
        else []
    )
    customers = sum(1 for _ in model.records(System.ERP, Kind.CUSTOMER))
    report = Report(started, time.time(), customers, findings, repaired, incomplete)
    if trigger is not None:
        operations = {finding.key(): operation for finding, operation in repaired}
        async with model.store.transaction() as tx:
            await tx.record_reconciliation(
                started_at=datetime.fromtimestamp(report.started_at, UTC),
                finished_at=datetime.fromtimestamp(report.finished_at, UTC),
                trigger=trigger,
                customers=customers,
                findings=[
                    DriftFinding(**f.to_json(), repair=operations.get(f.key())) for f in findings
                ],
                incomplete=incomplete,
            )
    return report
