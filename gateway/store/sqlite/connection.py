"""One ``sqlite3`` connection and the thread that owns it.

Why not aiosqlite: the writer sends several statements, or a whole batch of units of
work, in one hand-off to the connection's thread (``batch``, ``held``), and aiosqlite
offers no public way to run a function there. So each connection here is a
``sqlite3.Connection`` created, used and closed by one thread of ours, fed by a queue;
``call`` runs any function on it with the raw connection, ``execute``/``fetchall`` are
the one-statement shorthands. Exceptions are ``sqlite3``'s own.

A call awaited by a task that is cancelled still runs to its end on the thread (the
connection's statements stay in order); the task just stops waiting for the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from gateway.store.sql.rows import Row

__all__ = ["Connection", "connect"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

_Job = tuple[Callable[[], Any], asyncio.Future[Any]] | None


def _deliver(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class Connection:
    """A ``sqlite3.Connection`` driven by its own thread (build with ``connect``)."""

    def __init__(self, path: Path, timeout: float) -> None:
        self._path = path
        self._timeout = timeout
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._raw: sqlite3.Connection | None = None
        self._thread = threading.Thread(target=self._serve, name=f"sqlite:{path.name}", daemon=True)

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            function, future = job
            try:
                value, error = function(), None
            except BaseException as exc:  # handed to the awaiting task
                value, error = None, exc
            # RuntimeError: the loop closed meanwhile, nobody is waiting
            with contextlib.suppress(RuntimeError):
                future.get_loop().call_soon_threadsafe(_deliver, future, value, error)

    async def _submit(self, function: Callable[[], _T]) -> _T:
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._jobs.put((function, future))
        return await future

    async def call(
        self,
        function: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """``function(raw_connection, *args)`` on the connection's thread."""
        raw = self._raw
        if raw is None:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        return await self._submit(lambda: function(raw, *args, **kwargs))

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement; answers its row count."""
        return await self.call(lambda raw: raw.execute(sql, params).rowcount)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """One statement; answers its rows."""
        return await self.call(lambda raw: raw.execute(sql, params).fetchall())

    @property
    def in_transaction(self) -> bool:
        return self._raw is not None and self._raw.in_transaction

    async def _open(self) -> None:
        def connect() -> sqlite3.Connection:
            return sqlite3.connect(
                self._path, timeout=self._timeout, isolation_level=None, check_same_thread=True
            )

        self._thread.start()
        try:
            self._raw = await self._submit(connect)
        except BaseException:
            self._jobs.put(None)
            raise

    async def close(self) -> None:
        """Close the connection on its thread and let the thread end."""
        raw, self._raw = self._raw, None
        if raw is not None:
            try:
                await self._submit(raw.close)
            finally:
                self._jobs.put(None)


async def connect(path: Path, *, busy_timeout: float) -> Connection:
    """An open connection to the file at ``path`` in autocommit mode (the caller sends
    ``BEGIN``/``COMMIT`` itself); ``busy_timeout``: SQLite's, in seconds."""
    conn = Connection(path, busy_timeout)
    await conn._open()
    return conn
