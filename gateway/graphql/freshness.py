"""Freshness per system: how current each system's part of an answer is, and why.

Built from the ``Fetched`` outcomes the request's DataLoaders recorded for one system:
fresh, stale (the read model's copy past its budget, or last-known-good data after a
failure) or failed, with the least fresh source the answer came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from canonical import System
from gateway.graphql.loaders import Fetched
from gateway.graphql.types import DataSource, SourceFreshness

__all__ = ["freshness", "stale_of"]


def stale_of(fetched: Sequence[Fetched[Any]]) -> tuple[bool, float | None]:
    """Whether any of a field's answers is stale, and the oldest stale age if so."""
    ages = [f.age_seconds or 0.0 for f in fetched if f.stale]
    return (True, max(ages)) if ages else (False, None)


_SOURCE_ORDER = ("LAST_KNOWN_GOOD", "READ_THROUGH", "CATCH_UP", "EVENTS", "LIVE")


def _source(outcomes: Sequence[Fetched[Any]]) -> DataSource | None:
    """The least fresh source among the outcomes (what the answer is only as good as)."""
    names = {o.source for o in outcomes if o.value is not None or o.error is None}
    for name in _SOURCE_ORDER:
        if name in names:
            return DataSource[name]
    return None


def freshness(system: System, outcomes: Sequence[Fetched[Any]]) -> SourceFreshness:
    """``system``'s row of ``Customer360.freshness`` from its outcomes in this request."""
    if not outcomes:
        return SourceFreshness(
            system=system,
            linked=True,
            as_of=None,
            stale=False,
            age_seconds=None,
            reason="not read: no field of this request needed it",
            error_code=None,
        )
    failed = [o for o in outcomes if o.error is not None]
    stale = [o for o in outcomes if o.stale]
    as_of = min(o.as_of for o in outcomes)
    source = _source(outcomes)
    if not failed:
        if stale:  # the read model's copy, past its budget, not refreshed (quota, breaker)
            return SourceFreshness(
                system=system,
                linked=True,
                as_of=as_of,
                stale=True,
                age_seconds=max(o.age_seconds or 0.0 for o in stale),
                reason=next((o.reason for o in stale if o.reason), None),
                error_code=None,
                source=source,
            )
        return SourceFreshness(
            system=system,
            linked=True,
            as_of=as_of,
            stale=False,
            age_seconds=None,
            reason=None,
            error_code=None,
            source=source,
        )
    error = failed[0].error
    assert error is not None
    age = max((o.age_seconds or 0.0 for o in stale), default=None)
    shown = "the read model" if source and source.name in _LOCAL else "last-known-good data"
    reason = (
        f"{error.message}; showing {shown}"
        if stale
        else f"{error.message}; no last-known-good data"
    )
    return SourceFreshness(
        system=system,
        linked=True,
        as_of=as_of,
        stale=bool(stale),
        age_seconds=age,
        reason=reason,
        error_code=str(error.code),
        source=source,
    )


_LOCAL = frozenset({"EVENTS", "CATCH_UP", "READ_THROUGH"})
