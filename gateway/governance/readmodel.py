"""The read model's settings from ``policies/readmodel.toml``: freshness budgets, catch-up
schedule and each system's quota split.

The file is optional (without it the defaults below apply); every key is checked and
unknown keys are refused (``PolicyError(file, key, reason)``). Durations are seconds, as a
number or as text with a unit (``"60s"``, ``"5m"``, ``"1h"``)::

    [freshness]               # how old (seconds) a record may be before a read refreshes it
    default = "60s"
    [freshness.support]
    cases = "30s"             # per system and field group (the loaders' names)

    [catch_up]
    interval = "15s"          # each system's change feeds are read at least this often
    min_gap = "1s"            # passes of one system never start closer than this
    page_size = 100
    [catch_up.support]        # per system: its own interval and min_gap
    min_gap = "13s"

    [quota]                   # each system's policy rate split by purpose (sums to <= 1)
    interactive = 0.5         # reads refreshing past-budget or missing records
    catch_up = 0.2            # change feeds, initial load and event read-backs
    writes = 0.2              # outbox deliveries (the rest of the actor's rate)
    reconcile = 0.1           # reconciliation runs (scheduled and `crosswalk reconcile`)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from canonical import System
from gateway.governance._toml import PolicyTable, read_policy

__all__ = ["GROUPS", "QuotaShares", "ReadModelPolicy", "load_readmodel_policy"]

#: field groups per system: the customer 360 loaders that read them
GROUPS: dict[System, frozenset[str]] = {
    System.ERP: frozenset({"customers", "orders", "billing_documents"}),
    System.BILLING: frozenset({"customers", "invoices", "subscriptions"}),
    System.CRM: frozenset({"customers", "opportunities"}),
    System.SUPPORT: frozenset({"customers", "cases", "entitlements"}),
}

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")


@dataclass(frozen=True, slots=True)
class QuotaShares:
    interactive: float = 0.5
    catch_up: float = 0.2
    writes: float = 0.2
    reconcile: float = 0.1


@dataclass(frozen=True, slots=True)
class ReadModelPolicy:
    default_budget: float = 60.0
    #: (system, group) -> seconds
    budgets: dict[tuple[System, str], float] = field(default_factory=dict)
    catch_up_interval: float = 15.0
    min_gap: float = 1.0
    page_size: int = 100
    quota: QuotaShares = field(default_factory=QuotaShares)
    #: per system (interval, min_gap) where ``[catch_up.<system>]`` differs
    schedules: dict[System, tuple[float, float]] = field(default_factory=dict)

    def budget(self, system: System, group: str) -> float:
        return self.budgets.get((system, group), self.default_budget)

    def schedule(self, system: System) -> tuple[float, float]:
        """(interval, min_gap) of ``system``'s catch-up passes."""
        return self.schedules.get(system, (self.catch_up_interval, self.min_gap))


def duration(table: PolicyTable, name: str, default: float) -> float:
    if name not in table:
        return default
    value = table.get(name)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise table.fail(name, f"must be seconds or a duration like '60s', '5m', got {value!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        seconds = table.number(name, allow_zero=True)
    if seconds < 0:
        raise table.fail(name, "must not be negative")
    return seconds


def load_readmodel_policy(path: Path | str) -> ReadModelPolicy:
    """Read ``path`` (a missing file means the defaults); raise PolicyError on a bad value."""
    data = read_policy(path, if_missing=None)
    data.only({"freshness", "catch_up", "quota"})
    fresh = data.table("freshness", required=False)
    fresh.only({"default", *(str(s) for s in System)})
    default = duration(fresh, "default", 60.0)
    budgets: dict[tuple[System, str], float] = {}
    for system in System:
        if str(system) not in fresh:
            continue
        per = fresh.table(str(system))
        per.only(GROUPS[system])
        for group in GROUPS[system]:
            if group in per:
                budgets[(system, group)] = duration(per, group, default)
    catch = data.table("catch_up", required=False)
    catch.only({"interval", "min_gap", "page_size", *(str(s) for s in System)})
    interval = duration(catch, "interval", 15.0)
    if interval <= 0:
        raise catch.fail("interval", "must be more than zero")
    min_gap = duration(catch, "min_gap", 1.0)
    schedules: dict[System, tuple[float, float]] = {}
    for system in System:
        if str(system) not in catch:
            continue
        own = catch.table(str(system))
        own.only({"interval", "min_gap"})
        own_interval = duration(own, "interval", interval)
        if own_interval <= 0:
            raise own.fail("interval", "must be more than zero")
        schedules[system] = (own_interval, duration(own, "min_gap", min_gap))
    page_size = catch.integer("page_size", minimum=1, default=100)
    if page_size > 1000:
        raise catch.fail("page_size", f"must be at most 1000, got {page_size}")
    quota = data.table("quota", required=False)
    names = ("interactive", "catch_up", "writes", "reconcile")
    quota.only(set(names))
    defaults = QuotaShares()
    shares = {
        name: quota.number(name, allow_zero=True, default=getattr(defaults, name)) for name in names
    }
    for name, share in shares.items():
        if share > 1:
            raise quota.fail(name, f"is a share of the system's rate: at most 1, got {share}")
    if sum(shares.values()) > 1.0 + 1e-9:
        raise quota.fail(
            "interactive",
            f"the shares add up to {sum(shares.values()):.2f}; they may not exceed 1",
        )
    if shares["catch_up"] <= 0:
        raise quota.fail("catch_up", "must be more than zero, or the feeds never run")
    return ReadModelPolicy(
        default_budget=default,
        budgets=budgets,
        catch_up_interval=interval,
        min_gap=min_gap,
        page_size=page_size,
        quota=QuotaShares(**shares),
        schedules=schedules,
    )
