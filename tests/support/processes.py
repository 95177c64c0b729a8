"""Child processes the tests start (``crosswalk up``, ``serve``, ``sandbox``)."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def stop_process(proc: subprocess.Popen[Any], sig: signal.Signals, *, within: float) -> None:
    """Send ``sig`` to ``proc`` if it still runs and wait ``within`` seconds for it to
    end; kill it past that."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=within)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
