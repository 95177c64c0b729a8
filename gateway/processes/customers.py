"""Find a customer's ids in every system from any one of them, for validation.

``customerId`` arguments take the canonical id (``cw_...``) or a system id written
``erp:<BusinessPartner>``, ``billing:<cus_...>``, ``crm:<001...>``, ``support:<org id>``.
The cross-reference registry answers first; ids it lacks are looked up through the
actors by the ERP business partner (the key every system links by).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from actors.errors import NotFound
from actors.messages import FindCustomerByXRef, GetCustomers
from canonical import Customer, System
from canonical.validation import Problems
from gateway.processes.context import CommandContext

__all__ = ["ResolvedCustomer", "parse_customer_id", "resolve_customer"]

_LINK_KEY = {
    System.BILLING: "metadata[erp_bp]",
    System.CRM: "ERP_Customer_Id__c",
    System.SUPPORT: "organization external_id",
}


@dataclass(slots=True)
class ResolvedCustomer:
    canonical_id: str | None
    ids: dict[System, str] = field(default_factory=dict)
    name: str | None = None
    erp: Customer | None = None  # the ERP record, when it was read
    discovered: dict[System, str] = field(default_factory=dict)  # not yet in the registry


def parse_customer_id(value: str) -> tuple[System | None, str]:
    """``("erp", "1000042")`` for ``erp:1000042``; ``(None, value)`` for a canonical id."""
    prefix, sep, rest = value.partition(":")
    if sep and rest:
        try:
            return System(prefix), rest
        except ValueError:
            pass
    return None, value


async def resolve_customer(
    ctx: CommandContext,
    problems: Problems,
    field_name: str,
    customer_id: str,
    *,
    need: Iterable[System] = (),
    want: Iterable[System] = (),
    read_erp: bool = False,
) -> ResolvedCustomer | None:
    """The customer's ids; a problem on ``field_name`` (and ``None``) if it does not exist
    or lacks a record in a system of ``need``. ``want``: found if possible, no problem if not.
    """
    system, native = parse_customer_id(customer_id.strip())
    if not native or len(native) > 100:
        problems.add(field_name, "is not a customer id (cw_..., erp:, billing:, crm: or support:)")
        return None
    canonical = await ctx.store.resolve(system, native) if system else native
    record = await ctx.store.get_xref(canonical) if canonical else None
    if record is None and system is None:
        problems.add(field_name, f"no customer {native!r} in the cross-reference registry")
        return None
    found = ResolvedCustomer(
        canonical_id=record.canonical_id if record else None,
        ids=record.ids() if record else {},
        name=record.name if record else None,
    )
    if system is not None and system not in found.ids:
        found.ids[system] = native
        found.discovered[system] = native
    if System.ERP not in found.ids:
        assert system is not None  # a registry record without an ERP id was handled above
        try:
            answer = await ctx.ask(system, GetCustomers((native,)))
        except NotFound:
            answer = {}
        customer = answer.get(native)
        if customer is None:
            problems.add(field_name, f"no {system} customer {native!r}")
            return None
        if not customer.xref.erp:
            problems.add(
                field_name,
                f"{system} customer {native!r} is linked to no ERP business partner "
                f"({_LINK_KEY.get(system, 'link key')} is empty); onboard it first",
            )
            return None
        found.ids[System.ERP] = found.discovered[System.ERP] = customer.xref.erp
        found.name = found.name or customer.name
    bp = found.ids[System.ERP]
    if read_erp or System.ERP in found.discovered:
        try:
            answer = await ctx.ask(System.ERP, GetCustomers((bp,)))
        except NotFound:
            answer = {}
        found.erp = answer.get(bp)
        if found.erp is None:
            problems.add(field_name, f"ERP business partner {bp!r} does not exist")
            return None
        found.name = found.name or found.erp.name
    needed = set(need)
    for other in (*needed, *want):
        if other in found.ids or other is System.ERP:
            continue
        match = await ctx.ask(other, FindCustomerByXRef(bp))
        if match is not None:
            found.ids[other] = found.discovered[other] = match.id
        elif other in needed:
            problems.add(
                field_name,
                f"the customer (ERP business partner {bp}) has no {other} record "
                f"({_LINK_KEY[other]} = {bp}); run onboardCustomer first",
            )
            return None
    return found
