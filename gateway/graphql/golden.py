"""The golden record: each customer field taken from the system that owns it
(``policies/ownership.toml``), reading only the fields a request asks for.

``Customer360.golden`` builds one ``GoldenRecord`` per customer from the systems'
``Fetched`` customers: ``golden_fields`` finds the fields the query selects (through
fragments too), ``golden_record`` picks each value from its owner first, then from the
other systems that may hold it.
"""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionSetNode,
)
from strawberry.types import Info

from canonical import Customer, System
from gateway.governance.ownership import OwnershipPolicy
from gateway.graphql.context import Context
from gateway.graphql.errors import CodedError
from gateway.graphql.loaders import Fetched
from gateway.graphql.types import FieldSource

__all__ = ["GoldenRecord", "golden_fields", "golden_record", "ownership", "ownership_plan"]

_DEFAULT_OWNERSHIP = OwnershipPolicy()


def ownership(context: Context) -> OwnershipPolicy:
    """The runtime's field ownership (``policies/ownership.toml``), or the default one."""
    policy = getattr(context.runtime.policies, "ownership", None)
    return policy if isinstance(policy, OwnershipPolicy) else _DEFAULT_OWNERSHIP


def _snake_to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@strawberry.type(
    description="The customer's master data, each field taken from the system that owns it "
    "(policies/ownership.toml). A field whose owner failed without last-known-good data is "
    "null with that system's error; `sources` says where each value came from."
)
class GoldenRecord:
    # Plain values, computed once by ``Customer360.golden``: a field whose owner failed
    # holds the owner's CodedError, which GraphQL raises on that field alone.
    name: str | None = strawberry.field(description="Display name (ERP-owned).")
    legal_name: str | None = strawberry.field(description="Registered legal name (ERP-owned).")
    tax_id: str | None = strawberry.field(description="Tax id, e.g. VAT number (ERP-owned).")
    country: str | None = strawberry.field(description="Country, ISO 3166-1 alpha-2 (ERP-owned).")
    payment_terms: str | None = strawberry.field(
        description="Payment terms key, e.g. `NT30` (ERP-owned)."
    )
    credit_status: str | None = strawberry.field(description="Credit status (ERP-owned).")
    currency: str | None = strawberry.field(
        description="Billing currency, ISO 4217 (billing-owned)."
    )
    email: str | None = strawberry.field(description="Billing e-mail address (billing-owned).")
    segment: str | None = strawberry.field(description="Market segment (CRM-owned).")
    industry: str | None = strawberry.field(description="Industry (CRM-owned).")
    owner: str | None = strawberry.field(description="Account owner (CRM-owned).")
    support_tier: str | None = strawberry.field(description="Support tier (support-owned).")
    sources: list[FieldSource] = strawberry.field(description="Where each field's value came from.")


#: id(policy) -> (policy, field -> (owner, where to look)): policies are loaded once and
#: immutable, and ``OwnershipPolicy.sources`` builds a new tuple per call
_PLANS: dict[int, tuple[OwnershipPolicy, dict[str, tuple[System, tuple[System, ...]]]]] = {}


def ownership_plan(policy: OwnershipPolicy) -> dict[str, tuple[System, tuple[System, ...]]]:
    """Field -> (its owner, the systems to read it from in order), once per policy."""
    cached = _PLANS.get(id(policy))
    if cached is not None and cached[0] is policy:
        return cached[1]
    plan = {name: (policy.owner(name), policy.sources(name)) for name in policy.customer}
    if len(_PLANS) > 64:
        _PLANS.clear()
    _PLANS[id(policy)] = (policy, plan)
    return plan


def _pick(
    records: dict[System, Fetched[Customer]], owner: System, sources: tuple[System, ...], name: str
) -> tuple[Any, System | None, bool]:
    for system in sources:
        fetched = records.get(system)
        if fetched is None:
            continue
        if system is owner and fetched.error is not None and not fetched.stale:
            raise fetched.error
        if fetched.value is None:
            continue
        value = getattr(fetched.value, name)
        if value is not None:
            return value, system, fetched.stale
    return None, None, False


def golden_record(
    records: dict[System, Fetched[Customer]],
    policy: OwnershipPolicy,
    wanted: set[str],
    *,
    with_sources: bool = True,
) -> GoldenRecord:
    """The record for the ``wanted`` fields; ``sources`` only when the query asks for it."""
    plan = ownership_plan(policy)
    values: dict[str, Any] = {}
    sources: list[FieldSource] = []
    for name, (owner, where) in plan.items():
        if name not in wanted:
            values[name] = None
            continue
        try:
            value, system, stale = _pick(records, owner, where, name)
        except CodedError as exc:
            values[name] = exc  # raised by GraphQL on this field only
            system, stale = None, False
        else:
            values[name] = None if value is None else str(value)
        if with_sources:
            sources.append(
                FieldSource(
                    field_name=_snake_to_camel(name), system=system, owner=owner, stale=stale
                )
            )
    return GoldenRecord(sources=sources, **values)


_CAMEL = {_snake_to_camel(f): f for f in OwnershipPolicy().customer}
#: id(field node) -> (node, names asked under it): documents are cached, so are their nodes
_SELECTIONS: dict[int, tuple[FieldNode, frozenset[str]]] = {}


def _names_under(node: FieldNode, fragments: dict[str, FragmentDefinitionNode]) -> frozenset[str]:
    cached = _SELECTIONS.get(id(node))
    if cached is not None and cached[0] is node:
        return cached[1]
    names: set[str] = set()
    stack: list[SelectionSetNode] = [node.selection_set] if node.selection_set else []
    seen: set[str] = set()
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FieldNode):
                names.add(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                stack.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in seen and name in fragments:
                    seen.add(name)
                    stack.append(fragments[name].selection_set)
    result = frozenset(names)
    if len(_SELECTIONS) > 10_000:
        _SELECTIONS.clear()
    _SELECTIONS[id(node)] = (node, result)
    return result


def golden_fields(info: Info[Context, None], policy: OwnershipPolicy) -> tuple[set[str], bool]:
    """The golden-record fields this request asks for (all of them for ``sources``), and
    whether it asks for ``sources``."""
    raw = info._raw_info
    names: frozenset[str] = frozenset()
    for node in raw.field_nodes:
        names |= _names_under(node, raw.fragments)
    if "sources" in names:
        return set(policy.customer), True
    return {_CAMEL[n] for n in names if n in _CAMEL and _CAMEL[n] in policy.customer}, False
