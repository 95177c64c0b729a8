"""Discovery sync: fill the cross-reference registry from every system's customer list.

Each system's customers are listed (``ListCustomers``, paged, at ``BATCH`` priority so a
portal's reads go first) and every record is linked in the registry with the ids it
carries: its own id and the cross-references it holds (CRM ``ERP_Customer_Id__c``,
billing ``metadata[erp_bp]``, support ``external_id``), so the four records of one
company meet in one canonical customer. Names come from the ERP, the owner of ``name``;
a customer the ERP does not know keeps the name its own system gives it.

::

    report = await discover(store, systems)     # or crosswalk's own schedule
    report.linked[System.CRM], report.conflicts, report.failed

One system failing does not stop the others; its failure is in ``report.failed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from actors.errors import CrosswalkSystemError, LimitExceeded
from actors.messages import ListCustomers, Page, Priority
from canonical import Customer, System
from gateway.store.errors import XRefConflict

__all__ = ["DiscoveryReport", "customer_links", "discover"]

#: seconds one page of customers may take
PAGE_TIMEOUT = 30.0
#: pages one system's listing may take unless policy says otherwise
DEFAULT_MAX_PAGES = 1000


def customer_links(customer: Customer) -> dict[System, str]:
    """The ids a customer record ties together: its own and its cross-references."""
    ids = {customer.system: customer.id}
    for system in System:
        value = customer.xref.get(system)
        if value and system not in ids:
            ids[system] = value
    return ids


@dataclass
class DiscoveryReport:
    """What one discovery run saw and did, per system."""

    seen: dict[System, int] = field(default_factory=dict)
    linked: dict[System, int] = field(default_factory=dict)
    #: records whose cross-references contradict the registry: (system, id, reason)
    conflicts: list[tuple[System, str, str]] = field(default_factory=list)
    #: systems whose listing failed, with the reason
    failed: dict[System, str] = field(default_factory=dict)


async def _list_all(system: System, actor: Any, page_size: int, max_pages: int) -> list[Customer]:
    customers: list[Customer] = []
    cursor: str | None = None
    for _ in range(max_pages):
        page: Page[Customer] = await actor.ask(
            ListCustomers(cursor=cursor, limit=page_size),
            priority=Priority.BATCH,
            timeout=PAGE_TIMEOUT,
        )
        customers.extend(page.items)
        if page.next_cursor is None or not page.items:
            return customers
        cursor = page.next_cursor
    raise LimitExceeded(
        system,
        f"listing customers went past {max_pages} pages of {page_size} "
        "(bounds.max_pages in policies/systems.toml)",
    )


async def _link(store: Any, system: System, customer: Customer, report: DiscoveryReport) -> None:
    ids = customer_links(customer)
    # the ERP owns the name; others name a customer only if nobody has yet
    name = customer.name if system is System.ERP else None
    try:
        record = await store.link(ids, name=name)
        if record.name is None and customer.name:
            await store.link(ids, name=customer.name)
    except XRefConflict as exc:
        report.conflicts.append((system, customer.id, str(exc)))
        return
    report.linked[system] = report.linked.get(system, 0) + 1


async def discover(
    store: Any,
    systems: Any,
    *,
    only: Mapping[System, bool] | None = None,
    page_size: int = 100,
    max_pages: Mapping[System, int] | None = None,
) -> DiscoveryReport:
    """List every system's customers in parallel and link them in the registry.

    A listing past ``max_pages`` pages (per system, default 1000) stops: that system is
    reported in ``failed`` and nothing of it is linked this round.
    """
    report = DiscoveryReport()
    listed: dict[System, list[Customer]] = {}
    wanted = [s for s in System if only is None or only.get(s, False)]

    async def list_one(system: System) -> None:
        try:
            bound = (max_pages or {}).get(system, DEFAULT_MAX_PAGES)
            listed[system] = await _list_all(system, systems[system], page_size, bound)
        except (CrosswalkSystemError, TimeoutError) as exc:
            report.failed[system] = str(exc)
        else:
            report.seen[system] = len(listed[system])

    async with anyio.create_task_group() as tg:
        for system in wanted:
            tg.start_soon(list_one, system)
    # the ERP first: it names the customers and is the key the others link by
    for system in sorted(listed, key=lambda s: s is not System.ERP):
        for customer in listed[system]:
            await _link(store, system, customer, report)
    return report
