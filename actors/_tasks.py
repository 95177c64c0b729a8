"""The two task-group shapes that repeat in actors/.

``RunsInOwnGroup``: something that runs as ``await tg.start(x.run)`` until ``x.stop()``
and can also be used as ``async with x:``. Entering starts ``run`` in a task group the
object owns and returns once ``run`` said it is ready; leaving calls ``stop()`` and waits
for ``run`` to end. ``Actor``, ``SystemActor`` and ``Systems`` are three of them.

``fan_out``: one call per key, at most ``limit`` at a time, in a task group that ends
before it returns; the first system error raised comes out as itself, not wrapped in an
exception group (the actor maps single errors to a retry or an answer).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Self, TypeVar

import anyio
from anyio.abc import TaskGroup, TaskStatus

from actors.errors import CrosswalkSystemError

__all__ = ["RunsInOwnGroup", "fan_out", "first_error"]

T = TypeVar("T")


class RunsInOwnGroup:
    """Base for a ``run``/``stop`` pair that may also be entered with ``async with``."""

    _owner: TaskGroup | None = None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._owner = anyio.create_task_group()
        await self._owner.__aenter__()
        try:
            await self._owner.start(self.run)
        except BaseException:
            self.stop()
            await self._owner.__aexit__(*sys.exc_info())
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self.stop()
        assert self._owner is not None
        return await self._owner.__aexit__(exc_type, exc, tb)


async def fan_out(
    keys: Iterable[str], fetch: Callable[[str], Awaitable[T | None]], *, limit: int
) -> dict[str, T]:
    """``fetch`` each distinct key, at most ``limit`` at a time; answers in key order,
    leaving out keys whose ``fetch`` answered None."""
    unique = list(dict.fromkeys(keys))
    results: dict[str, T] = {}
    if len(unique) == 1:
        # one key (a customer 360): no task group, limiter and task to pay for, which
        # cost more CPU than the read's own bookkeeping
        value = await fetch(unique[0])
        if value is not None:
            results[unique[0]] = value
        return results
    limiter = anyio.CapacityLimiter(limit)

    async def one(key: str) -> None:
        async with limiter:
            value = await fetch(key)
        if value is not None:
            results[key] = value

    try:
        async with anyio.create_task_group() as tg:
            for key in unique:
                tg.start_soon(one, key)
    except BaseExceptionGroup as group:
        error = first_error(group)
        if error is group:
            raise
        raise error from group
    return {key: results[key] for key in unique if key in results}


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first system error in a task group's failures (else the group itself)."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            inner = first_error(exc)
            if inner is not exc:
                return inner
        elif isinstance(exc, CrosswalkSystemError):
            return exc
    return group
