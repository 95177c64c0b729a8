"""A sandbox system's records: kept in memory for speed, persisted to the system's SQLite file.

Each sandbox system is a small document store: records are JSON objects grouped by kind
(``"A_BusinessPartner"``, ``"customer"``, ``"Account"``, ``"ticket"`` ...), kept in
creation order. Reads come from memory; every write is committed to SQLite *before* the
in-memory view changes, so a write that fails leaves both unchanged and a killed process
restarts from exactly what was committed.

The file runs in WAL mode with ``synchronous=NORMAL``: a commit appends to the WAL without
an fsync, so a killed sandbox keeps every answered write (only a power cut could lose the
last ones, which a sandbox can afford). Such a commit takes some tens of microseconds, so
it runs on the event loop's own thread: handing it to a worker thread and waking the loop
again cost several times the write itself.
"""

from __future__ import annotations

import contextvars
import sqlite3
from collections.abc import (
    AsyncIterator,
    Callable,
    Hashable,
    Iterable,
    Iterator,
    Mapping,
)
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson

__all__ = ["Doc", "DocStore"]

Doc = dict[str, Any]


def _commit_all(
    conn: sqlite3.Connection, statements: tuple[tuple[str, Any], ...], many: bool
) -> None:
    """Every statement, then COMMIT; ROLLBACK on an error."""
    try:
        for sql, params in statements:
            if many:
                conn.executemany(sql, params)
            else:
                conn.execute(sql, params)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


class _Index:
    """Records of one kind grouped by ``key(doc)``, kept current by every write, so a
    lookup by value costs a dict access instead of a scan of the kind."""

    __slots__ = ("filed", "groups", "key")

    def __init__(self, key: Callable[[Doc], Hashable], docs: Mapping[str, Doc]) -> None:
        self.key = key
        self.groups: dict[Hashable, dict[str, Doc]] = {}
        #: the key each record is filed under (a record changed in place still leaves
        #: its old group)
        self.filed: dict[str, Hashable] = {}
        for doc_id, doc in docs.items():
            self.add(doc_id, doc)

    def add(self, doc_id: str, doc: Doc) -> None:
        self.remove(doc_id)
        value = self.key(doc)
        self.groups.setdefault(value, {})[doc_id] = doc
        self.filed[doc_id] = value

    def remove(self, doc_id: str) -> None:
        if doc_id not in self.filed:
            return
        value = self.filed.pop(doc_id)
        group = self.groups[value]
        del group[doc_id]
        if not group:
            del self.groups[value]


class _Batch:
    """Writes staged by one task inside ``DocStore.batch()``: committed together at its end."""

    __slots__ = ("after", "counters", "kv", "rows", "staged")

    def __init__(self) -> None:
        #: kind -> id -> (seq, doc): what this task reads back before the commit
        self.staged: dict[str, dict[str, tuple[int, Doc]]] = {}
        #: (kind, id) -> (kind, id, seq, body), one executemany at the commit; a record
        #: put twice is written once, as last put
        self.rows: dict[tuple[str, str], tuple[str, str, int, bytes]] = {}
        #: key -> (key, value, expires): small key-value rows (idempotency answers)
        self.kv: dict[str, tuple[str, bytes, float | None]] = {}
        #: counter name -> (name, value) drawn inside the batch
        self.counters: dict[str, tuple[str, int]] = {}
        #: callbacks to run once the rows are committed (webhook pushes)
        self.after: list[Callable[[], None]] = []


_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL);
"""


_UPSERT = (
    "INSERT INTO docs (kind, id, seq, body) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body"
)


_COUNTER_UPSERT = (
    "INSERT INTO counters (name, value) VALUES (?, ?) "
    # never lowered: a batch committing after another task's later draw keeps the later one
    "ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value)"
)
_KV_UPSERT = (
    "INSERT INTO kv (key, value, expires) VALUES (?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires"
)


class DocStore:
    """Records by kind and id. Use ``async with DocStore(path) as store``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._docs: dict[str, dict[str, Doc]] = {}
        self._seq = 0
        self._counters: dict[str, int] = {}
        #: (kind, index name) -> index; built on first use, updated by every write
        self._indexes: dict[str, dict[Hashable, _Index]] = {}
        #: the batch of the task inside ``batch()`` (a context variable: readers in other
        #: tasks never see staged, uncommitted records)
        self._batch: contextvars.ContextVar[_Batch | None] = contextvars.ContextVar(
            f"docstore-batch-{id(self)}", default=None
        )

    async def __aenter__(self) -> Self:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # the loop's thread only, but not necessarily the one that opened it (a test
        # client's portal thread, for one)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # a checkpoint (copying the WAL into the file, with an fsync) every ~40 MB of WAL
        # instead of every ~4 MB: pages rewritten in between are copied once, and the
        # loop stalls on a checkpoint a tenth as often
        self._db.execute("PRAGMA wal_autocheckpoint=10000")
        self._db.executescript(_SCHEMA)
        self._db.commit()
        self._load()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("The sandbox store is not open: use 'async with DocStore(path)'.")
        return self._db

    def _load(self) -> None:
        self._docs.clear()
        self._indexes.clear()
        for kind, doc_id, seq, body in self.db.execute(
            "SELECT kind, id, seq, body FROM docs ORDER BY seq"
        ):
            self._docs.setdefault(kind, {})[doc_id] = orjson.loads(body)
            self._seq = max(self._seq, seq)
        self._counters = dict(self.db.execute("SELECT name, value FROM counters"))

    # ------------------------------------------------------------------ reads

    def get(self, kind: str, doc_id: str) -> Doc | None:
        batch = self._batch.get()
        if batch is not None:
            staged = batch.staged.get(kind)
            if staged is not None and doc_id in staged:
                return staged[doc_id][1]
        return self._docs.get(kind, {}).get(doc_id)

    def _kind(self, kind: str) -> Mapping[str, Doc]:
        """The records of ``kind`` as this task sees them (its staged writes included)."""
        docs = self._docs.get(kind, {})
        batch = self._batch.get()
        staged = batch.staged.get(kind) if batch is not None else None
        if not staged:
            return docs
        merged = dict(docs)
        for doc_id, (_, doc) in sorted(staged.items(), key=lambda item: item[1][0]):
            merged[doc_id] = doc
        return merged

    def all(self, kind: str) -> list[Doc]:
        """Every record of ``kind``, oldest first."""
        return list(self._kind(kind).values())

    def iter(self, kind: str) -> Iterator[Doc]:
        return iter(self._kind(kind).values())

    def grouped(
        self, kind: str, name: Hashable, key: Callable[[Doc], Hashable]
    ) -> Mapping[Hashable, Mapping[str, Doc]]:
        """Records of ``kind`` grouped by ``key(doc)`` (hashable), each group in the order
        its records joined it. ``name`` identifies the index: the same name must always
        come with the same ``key``. Built on first use, then kept current by every write;
        read-only for callers."""
        batch = self._batch.get()
        if batch is not None and batch.staged.get(kind):
            # staged records are not filed yet: a one-off index of what this task sees
            return _Index(key, self._kind(kind)).groups
        indexes = self._indexes.setdefault(kind, {})
        index = indexes.get(name)
        if index is None:
            index = indexes[name] = _Index(key, self._docs.get(kind, {}))
        return index.groups

    def find(
        self, kind: str, name: Hashable, key: Callable[[Doc], Hashable], value: object
    ) -> list[Doc]:
        """The records of ``kind`` whose ``key(doc)`` equals ``value``, oldest first, as
        this task sees them: a look-up in the index ``grouped`` keeps (same ``name`` and
        ``key``), plus this task's staged records, instead of a scan of the kind."""
        try:
            hash(value)
        except TypeError:  # a list or an object: no index key equals it
            return [doc for doc in self.iter(kind) if key(doc) == value]
        indexes = self._indexes.setdefault(kind, {})
        index = indexes.get(name)
        if index is None:
            index = indexes[name] = _Index(key, self._docs.get(kind, {}))
        filed = index.groups.get(value, {})
        batch = self._batch.get()
        staged = batch.staged.get(kind) if batch is not None else None
        if staged:
            hits = [doc for doc_id, doc in filed.items() if doc_id not in staged]
            hits += [entry[1] for entry in staged.values() if key(entry[1]) == value]
        else:
            hits = list(filed.values())
        if len(hits) > 1:
            # an index group is in the order its records joined it: several hits are
            # answered in creation order, as a scan finds them
            return [doc for doc in self._kind(kind).values() if key(doc) == value]
        return hits

    def count(self, kind: str) -> int:
        return len(self._kind(kind))

    def is_empty(self) -> bool:
        batch = self._batch.get()
        return not any(self._docs.values()) and not (batch is not None and batch.rows)

    # ------------------------------------------------------------------ writes

    async def _write(self, *statements: tuple[str, Any], many: bool = False) -> None:
        """Run ``statements`` and commit: all of them or, on an error, none. ``many``:
        each statement's parameters are a list of rows (``executemany``). On the loop's
        thread (see the module docstring), so no other task's statements interleave."""
        _commit_all(self.db, statements, many)

    async def put(self, kind: str, doc_id: str, doc: Doc) -> Doc:
        """Insert or replace one record; keeps its place in creation order when replacing."""
        await self.put_many(kind, [(doc_id, doc)])
        return doc

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """Stage this task's ``put``/``put_many`` until the block ends, then commit them in
        one transaction (one fsync instead of one per record) and only then show them to
        other tasks. Inside the block this task reads its own staged records. The staged
        writes are committed even when the block raises, as separate puts would have been.
        ``kv_put`` and ``next_number`` are staged too; ``delete`` and ``clear`` commit
        what is staged first, to keep order.
        Callers serialise their read-modify-write themselves (the sandboxes' write lock)."""
        if self._batch.get() is not None:
            yield
            return
        batch = _Batch()
        token = self._batch.set(batch)
        try:
            yield
        finally:
            self._batch.reset(token)
            # no shield needed: the commit never waits (it runs on the loop's thread), so
            # a cancellation of the block cannot cut it short
            await self._commit_batch(batch)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once what this task wrote is committed: now, or at the end of
        its ``batch()``."""
        batch = self._batch.get()
        if batch is None:
            callback()
        else:
            batch.after.append(callback)

    async def _commit_batch(self, batch: _Batch) -> None:
        if batch.rows or batch.kv or batch.counters:
            await self._write(
                (_UPSERT, list(batch.rows.values())),
                (_KV_UPSERT, list(batch.kv.values())),
                (_COUNTER_UPSERT, list(batch.counters.values())),
                many=True,
            )
            for kind, staged in batch.staged.items():
                bucket = self._docs.setdefault(kind, {})
                indexes = self._indexes.get(kind, {}).values()
                for doc_id, (_, doc) in sorted(staged.items(), key=lambda item: item[1][0]):
                    bucket[doc_id] = doc
                    for index in indexes:
                        index.add(doc_id, doc)
            batch.rows = {}
            batch.staged = {}
            batch.kv = {}
            batch.counters = {}
        after, batch.after = batch.after, []
        for callback in after:
            callback()

    async def _flush(self) -> None:
        """Commit what this task has staged (before a write that is not staged)."""
        batch = self._batch.get()
        if batch is not None:
            await self._commit_batch(batch)

    async def put_many(self, kind: str, items: Iterable[tuple[str, Doc]]) -> None:
        batch = self._batch.get()
        if batch is not None:
            self._stage(batch, kind, items)
            return
        rows = []
        known = self._docs.get(kind, {})
        seq = self._seq
        for doc_id, doc in items:
            if doc_id not in known:
                seq += 1
            rows.append((kind, doc_id, seq, orjson.dumps(doc), doc_id, doc))
        await self._write(
            (_UPSERT, [row[:4] for row in rows]),
            many=True,
        )
        self._seq = seq
        bucket = self._docs.setdefault(kind, {})
        indexes = self._indexes.get(kind, {}).values()
        for row in rows:
            bucket[row[4]] = row[5]
            for index in indexes:
                index.add(row[4], row[5])

    def _stage(self, batch: _Batch, kind: str, items: Iterable[tuple[str, Doc]]) -> None:
        known = self._docs.get(kind, {})
        staged = batch.staged.setdefault(kind, {})
        for doc_id, doc in items:
            # a staged record keeps its place; a new one takes the next sequence number
            # now (the store's counter moves on, so other tasks never reuse it)
            if doc_id in staged:
                seq = staged[doc_id][0]
            elif doc_id in known:
                seq = self._seq
            else:
                self._seq += 1
                seq = self._seq
            staged[doc_id] = (seq, doc)
            batch.rows[kind, doc_id] = (kind, doc_id, seq, orjson.dumps(doc))

    async def delete(self, kind: str, doc_id: str) -> bool:
        await self._flush()
        if doc_id not in self._docs.get(kind, {}):
            return False
        await self._write(("DELETE FROM docs WHERE kind = ? AND id = ?", (kind, doc_id)))
        del self._docs[kind][doc_id]
        for index in self._indexes.get(kind, {}).values():
            index.remove(doc_id)
        return True

    async def next_number(self, name: str, start: int = 1) -> int:
        """The next value of a named counter (ids like SalesOrder numbers), persisted;
        inside ``batch()`` persisted with the batch."""
        value = max(self._counters.get(name, start - 1) + 1, start)
        batch = self._batch.get()
        if batch is not None:
            # drawn now for every task (no other task gets it), persisted with the batch: a
            # number whose batch never committed was never answered, so may be drawn again
            self._counters[name] = value
            batch.counters[name] = (name, value)
            return value
        await self._write((_COUNTER_UPSERT, (name, value)))
        self._counters[name] = value
        return value

    async def clear(self) -> None:
        await self._flush()
        await self._write(
            ("DELETE FROM docs", ()), ("DELETE FROM counters", ()), ("DELETE FROM kv", ())
        )
        self._docs.clear()
        self._indexes.clear()
        self._counters.clear()
        self._seq = 0

    # ------------------------------------------------------------------ small key-value

    async def kv_get(self, key: str, now: float) -> Any | None:
        """A stored value (idempotency answers and the like), or None once expired."""
        batch = self._batch.get()
        if batch is not None and key in batch.kv:
            _, body, expires = batch.kv[key]
            return None if expires is not None and expires < now else orjson.loads(body)
        row = self.db.execute("SELECT value, expires FROM kv WHERE key = ?", (key,)).fetchone()
        if row is None or (row[1] is not None and row[1] < now):
            return None
        return orjson.loads(row[0])

    async def kv_put(self, key: str, value: Any, expires: float | None) -> None:
        """Store ``value`` under ``key``; inside ``batch()`` committed with its records."""
        batch = self._batch.get()
        if batch is not None:
            batch.kv[key] = (key, orjson.dumps(value), expires)
            return
        await self._write((_KV_UPSERT, (key, orjson.dumps(value), expires)))
