"""Identical concurrent reads share one upstream call (a "single flight" per message).

Read messages are frozen dataclasses, so the message itself is the key. The first ask
leads: it goes through the mailbox; later identical asks wait for the leader's outcome
instead of queuing their own call. A later ask does not join a less urgent leader (it
would wait behind BATCH work): it leads its own flight. If the leader is cancelled, a
waiting joiner leads a fresh flight; if the leader fails, every joiner gets that error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import anyio

from actors._stats import ActorStats
from actors.errors import SystemTimeout
from actors.messages import Priority

__all__ = ["Coalescer"]


class _Flight:
    # slots: one per upstream read on the hot path
    __slots__ = ("_done", "error", "finished", "orphaned", "priority", "value")

    def __init__(self, priority: Priority) -> None:
        self.priority = priority
        # made only when someone joins: most reads are never shared
        self._done: anyio.Event | None = None
        self.finished = False
        self.value: Any = None
        self.error: BaseException | None = None
        self.orphaned = False  # the leader was cancelled before it had an outcome

    async def wait(self) -> None:
        if self.finished:
            return
        if self._done is None:
            self._done = anyio.Event()
        await self._done.wait()

    def finish(self) -> None:
        self.finished = True
        if self._done is not None:
            self._done.set()


class Coalescer:
    """Flights in progress for one actor, keyed by message."""

    def __init__(self, system: str, stats: ActorStats) -> None:
        self.system = system
        self.stats = stats
        self._flights: dict[Hashable, _Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    async def run(
        self,
        key: Hashable,
        priority: Priority,
        deadline: float,
        call: Callable[[], Awaitable[Any]],
    ) -> Any:
        """Answer ``call()``'s outcome, sharing it with identical concurrent ``key``s."""
        try:
            hash(key)
        except TypeError:  # unhashable reads cannot be matched: call on their own
            return await call()
        while True:
            flight = self._flights.get(key)
            if flight is None or flight.priority > priority:
                break
            with anyio.CancelScope(deadline=deadline) as scope:
                await flight.wait()
            if scope.cancelled_caught:
                raise SystemTimeout(
                    self.system,
                    f"no answer to {type(key).__name__} before its deadline (it was sharing an "
                    f"identical read already in flight)",
                )
            if flight.orphaned:
                continue  # the leader was cancelled: try again, maybe as the leader
            self.stats.coalesced += 1
            if flight.error is not None:
                raise flight.error
            return flight.value
        flight = _Flight(priority)
        self._flights[key] = flight
        try:
            flight.value = await call()
            return flight.value
        except Exception as exc:
            flight.error = exc
            raise
        except BaseException:
            flight.orphaned = True
            raise
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]
            flight.finish()
