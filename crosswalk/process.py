"""What every long-running ``crosswalk`` process shares: the event loop, the demo keys it
prints, dying with its parent and stopping on a signal."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

import anyio

__all__ = ["DEMO_KEYS", "LOOP", "die_with_parent", "wait_for_signal"]


#: the serving processes run on uvloop (installed with uvicorn[standard]): measured, it cuts
#: the gateway's CPU per request; the benchmarks run every side on the same loop
LOOP = {"use_uvloop": True}
DEMO_KEYS = {
    "demo-portal-key": "read scopes (portals)",
    "demo-widget-key": "read + write scopes (CRM widgets)",
    "demo-ops-key": "everything, including dead-letter replay",
}


def die_with_parent() -> None:
    """A child of ``crosswalk up`` stops when its parent dies, even by kill -9 (Linux)."""
    if os.environ.get("CROSSWALK_SUPERVISED") and sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def wait_for_signal(stop: anyio.Event) -> None:
    """Set ``stop`` on SIGINT or SIGTERM, and keep the handlers installed until cancelled,
    so a second Ctrl-C during a graceful shutdown cannot interrupt it half-way."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if stop.is_set():
                print(
                    f"crosswalk: {signal.Signals(signum).name} again: still stopping",
                    file=sys.stderr,
                )
            stop.set()
