"""The sandbox document store: writes commit in one hand-off, indexes follow writes."""

from __future__ import annotations

import sqlite3

import anyio
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


async def test_a_batch_commits_once_at_its_end_and_only_then_shows_its_records(tmp_path):
    path = tmp_path / "docs.db"
    commits: list[str] = []  # one entry per transaction
    pushed: list[str] = []
    async with DocStore(path) as store:
        await store.put("order", "1", {"party": "a"})
        write = store._write

        async def counted(*statements, many=False):
            commits.append(statements[0][0].split()[0])
            await write(*statements, many=many)

        store._write = counted  # type: ignore[method-assign]
        inside = anyio.Event()
        release = anyio.Event()
        seen_outside: list[object] = []

        async def batched():
            async with store.batch():
                await store.put("order", "2", {"party": "b"})
                await store.put("customer", "c", {"name": "x"})
                await store.put("order", "1", {"party": "c"})
                store.after_commit(lambda: pushed.append("event"))
                # this task reads its own staged records, in creation order
                assert store.get("order", "2") == {"party": "b"}
                assert store.all("order") == [{"party": "c"}, {"party": "b"}]
                assert store.count("order") == 2
                assert set(store.grouped("order", "p", lambda d: d["party"])) == {"b", "c"}
                assert pushed == []
                assert commits == []
                inside.set()
                with anyio.fail_after(5):
                    await release.wait()

        async def outside():
            with anyio.fail_after(5):
                await inside.wait()
            # another task sees nothing uncommitted
            seen_outside.extend([store.get("order", "2"), store.get("customer", "c")])
            seen_outside.append(store.get("order", "1"))
            release.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(batched)
            tg.start_soon(outside)
        assert seen_outside == [None, None, {"party": "a"}]
        assert commits == ["INSERT"]
        assert pushed == ["event"]
        assert store.all("order") == [{"party": "c"}, {"party": "b"}]
    async with DocStore(path) as store:
        assert store.all("order") == [{"party": "c"}, {"party": "b"}]
        assert store.get("customer", "c") == {"name": "x"}


async def test_a_batch_that_raises_still_commits_what_it_staged_and_flushes_before_others(
    tmp_path,
):
    path = tmp_path / "docs.db"
    async with DocStore(path) as store:

        async def failing_handler():
            async with store.batch():
                await store.put("order", "1", {"party": "a"})
                # a counter is drawn at once for every task, and persisted with the batch
                assert await store.next_number("orders") == 1
                assert "order" not in store._docs
                # a delete commits the staged records first, keeping the order
                assert not await store.delete("order", "missing")
                assert store._docs["order"] == {"1": {"party": "a"}}
                await store.put("order", "2", {"party": "b"})
                raise LookupError("the handler failed after two writes")

        with pytest.raises(LookupError):
            await failing_handler()
        assert store.all("order") == [{"party": "a"}, {"party": "b"}]
    async with DocStore(path) as store:
        assert store.all("order") == [{"party": "a"}, {"party": "b"}]
        assert await store.next_number("orders") == 2


async def test_a_batch_commits_its_key_value_rows_with_its_records(tmp_path):
    path = tmp_path / "docs.db"
    async with DocStore(path) as store:
        async with store.batch():
            await store.put("order", "1", {"party": "a"})
            await store.kv_put("idem", {"status": 200}, 100.0)
            assert await store.kv_get("idem", 0.0) == {"status": 200}
            assert await store.kv_get("idem", 200.0) is None  # expired
        assert await store.kv_get("idem", 0.0) == {"status": 200}
    async with DocStore(path) as store:
        assert store.get("order", "1") == {"party": "a"}
        assert await store.kv_get("idem", 0.0) == {"status": 200}


async def test_a_counter_drawn_in_a_batch_is_never_drawn_again_nor_lowered(tmp_path):
    path = tmp_path / "docs.db"
    async with DocStore(path) as store:
        drawn = anyio.Event()
        done = anyio.Event()

        async def batched():
            async with store.batch():
                assert await store.next_number("ids") == 1
                drawn.set()
                with anyio.fail_after(5):
                    await done.wait()

        async def outside():
            with anyio.fail_after(5):
                await drawn.wait()
            assert await store.next_number("ids") == 2  # committed before the batch's 1
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(batched)
            tg.start_soon(outside)
    async with DocStore(path) as store:
        assert await store.next_number("ids") == 3


async def test_find_uses_the_index_sees_staged_records_and_answers_in_creation_order(tmp_path):
    async with DocStore(tmp_path / "docs.db") as store:
        await store.put_many("org", [("1", {"ext": "a"}), ("2", {"ext": "b"}), ("3", {"ext": "c"})])

        def by_ext(value: object) -> list[str]:
            found = store.find("org", "ext", lambda doc: doc.get("ext"), value)
            return [doc["n"] if "n" in doc else doc["ext"] for doc in found]

        assert by_ext("b") == ["b"]
        assert by_ext("z") == []
        # record 1 joins group "b" after record 2: still answered oldest first
        await store.put("org", "1", {"ext": "b", "n": "one"})
        assert by_ext("b") == ["one", "b"]
        assert by_ext(["unhashable"]) == []
        async with store.batch():
            await store.put("org", "2", {"ext": "x", "n": "two"})
            await store.put("org", "4", {"ext": "b", "n": "four"})
            assert by_ext("b") == ["one", "four"]
            assert by_ext("x") == ["two"]
        assert by_ext("b") == ["one", "four"]
        assert await store.delete("org", "1")
        assert by_ext("b") == ["four"]
