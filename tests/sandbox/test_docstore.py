"""The sandbox document store: writes commit in one hand-off, indexes follow writes."""

from __future__ import annotations

import sqlite3

import pytest

from sandbox.docstore import DocStore

pytestmark = pytest.mark.anyio


async def test_writes_survive_a_reopen_and_a_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "docs.db"
    async with DocStore(path) as store:
        await store.put_many("order", [("1", {"party": "a"}), ("2", {"party": "b"})])
        await store.put("order", "1", {"party": "b"})
        assert await store.delete("order", "2")
        assert await store.next_number("orders", 100) == 100
        await store.kv_put("key", {"answer": 1}, None)
        with pytest.raises(sqlite3.OperationalError):
            await store._write(
                ("INSERT INTO counters (name, value) VALUES ('half', 1)", ()),
                ("INSERT INTO nowhere VALUES (1)", ()),
            )
    async with DocStore(path) as store:
        assert store.all("order") == [{"party": "b"}]
        assert await store.next_number("orders", 100) == 101
        assert await store.next_number("half") == 1  # the failed write's first half is gone
        assert await store.kv_get("key", 0.0) == {"answer": 1}


async def test_grouped_index_follows_puts_deletes_and_clear(tmp_path):
    async with DocStore(tmp_path / "docs.db") as store:
        await store.put_many("order", [("1", {"party": "a"}), ("2", {"party": "a"})])

        def by_party():
            groups = store.grouped("order", "party", lambda doc: doc.get("party"))
            return {party: sorted(docs) for party, docs in groups.items()}

        assert by_party() == {"a": ["1", "2"]}
        await store.put("order", "2", {"party": "b"})
        await store.put("order", "3", {"party": "b"})
        assert by_party() == {"a": ["1"], "b": ["2", "3"]}
        await store.delete("order", "1")
        assert by_party() == {"b": ["2", "3"]}
        await store.clear()
        assert by_party() == {}
