"""Garbage-collector settings for a process that serves reads through the actors.

Measured on the customer-360 read path: with CPython's default thresholds (700, 10, 10)
about a third of the actors' CPU per request went to the cyclic collector. Each request
holds a few thousand container objects while in flight (parsed JSON, canonical records,
aiohttp state) and the last-known-good caches keep every answer for its TTL, so a young
collection every 700 allocations finds most young objects alive, promotes them, and the
older generations keep being traversed again. A larger young generation lets in-flight
objects die young, and freezing what start-up built (schemas, policies, modules) keeps
full collections from walking it again and again. Nothing here disables the collector.

The launcher applies it when a command that serves through the actors starts
(``crosswalk serve``, ``sync``, ``reconcile``), once the app is built and before it
serves: a process-wide setting belongs to whoever owns the process, not to ``Systems``,
which tests, scripts and benchmarks also enter in processes of their own.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "tune_gc"]

#: allocations between young collections (CPython's default is 700)
YOUNG_THRESHOLD = 10_000
_CPYTHON_DEFAULT = 700

_tuned = False


def tune_gc() -> bool:
    """Once per process: a larger young generation and the start-up heap frozen.

    Leaves a threshold the host application set itself alone (only CPython's default is
    raised). Answers whether it changed anything.
    """
    global _tuned
    if _tuned:
        return False
    _tuned = True
    threshold, older, oldest = gc.get_threshold()
    if threshold != _CPYTHON_DEFAULT:
        return False
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    gc.freeze()
    return True
