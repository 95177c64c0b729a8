"""``crosswalk sync``: fill the read model from the systems' list endpoints, with progress.

The same catch-up the gateway runs in the background (``gateway.readmodel.feeds``): a
feed without a cursor lists every record; each page commits with the cursor after it, so
a sync killed at any point resumes where it stopped when run again, and one run over a
loaded read model reads only what changed since. It spends the systems' ``catch_up``
quota share like the gateway does; run it while the gateway is stopped, or the two share
the vendors' quotas.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

from actors import Systems
from canonical import System
from gateway.governance.policies import Policies
from gateway.readmodel.feeds import Feeds, system_feeds
from gateway.readmodel.model import ReadModel
from gateway.readmodel.quota import Quota
from gateway.store import Store

__all__ = ["ProgressBar", "sync"]

BAR = 24


class ProgressBar:
    """One line per feed, redrawn in place on a terminal (plain lines otherwise)."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self.out = out
        self.tty = out.isatty()
        self.records: dict[tuple[System, str], int] = {}
        self.pages: dict[tuple[System, str], int] = {}
        self.started = time.monotonic()

    def __call__(self, system: System, feed: str, records: int, done: bool) -> None:
        key = (system, feed)
        self.records[key] = self.records.get(key, 0) + records
        self.pages[key] = self.pages.get(key, 0) + 1
        filled = BAR if done else self.pages[key] % BAR
        bar = "#" * filled + "." * (BAR - filled)
        line = (
            f"{system}/{feed:<18} [{bar}] {self.records[key]:>7} records "
            f"{self.pages[key]:>5} pages {time.monotonic() - self.started:6.1f} s"
            + (" done" if done else "")
        )
        if self.tty:
            self.out.write("\r\033[K" + line + ("\n" if done else ""))
        elif done:
            self.out.write(line + "\n")
        self.out.flush()


async def sync(
    store: Store,
    systems: Systems,
    policies: Policies,
    only: Sequence[System] = (),
    *,
    out: TextIO = sys.stderr,
) -> dict[System, str | None]:
    """Catch every (or each ``only``) system up; returns each system's last error."""
    model = ReadModel(store, system_feeds())
    await model.load()
    quota = Quota(
        {system: p.rate.per_second for system, p in policies.systems.systems.items()},
        policies.readmodel.quota,
    )
    feeds = Feeds(model, systems, quota, policies.readmodel, store_events=False)
    bar = ProgressBar(out)
    errors: dict[System, str | None] = {}
    for system in only or tuple(System):
        await feeds.catch_up(system, progress=bar)
        failed = [
            f"{state.feed}: {state.last_error}"
            for (s, _), state in model.feeds.items()
            if s is system and state.last_error
        ]
        errors[system] = "; ".join(failed) or None
        complete = model.complete_at(system)
        status = "loaded" if complete is not None and not failed else "incomplete"
        out.write(f"{system}: {model.count(system)} records held, {status}\n")
        if failed:
            out.write(f"{system}: {errors[system]}\n")
    return errors
