"""The outbox: leasing in order per aggregate, leases, retries, deferral, dead letters."""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from datetime import timedelta

import anyio
import pytest

from gateway.store import (
    LeaseLost,
    MessageStatus,
    OperationStatus,
    StaleOperation,
    StepStatus,
    Store,
    open_store,
)

from .conftest import FakeClock
from .helpers import create_operation, enqueued_id, message

pytestmark = pytest.mark.anyio


async def test_lease_keeps_order_per_aggregate_and_runs_aggregates_in_parallel(
    store: Store,
) -> None:
    async with store.transaction() as tx:
        a1 = await enqueued_id(tx, message("a", "1"))
        b1 = await enqueued_id(tx, message("b", "1"))
        a2 = await enqueued_id(tx, message("a", "2"))
        c1 = await enqueued_id(tx, message("c", "1"))

    first = await store.lease("w", limit=10, lease_seconds=30)
    # One head per aggregate: a2 waits behind a1.
    assert [m.id for m in first] == [a1, b1, c1]
    assert all(m.status is MessageStatus.LEASED and m.lease_owner == "w" for m in first)
    assert await store.lease("w", limit=10, lease_seconds=30) == []

    await store.complete(a1, "w")
    second = await store.lease("w", limit=10, lease_seconds=30)
    assert [m.id for m in second] == [a2]


async def test_lease_respects_limit_priority_and_availability(
    store: Store, clock: FakeClock
) -> None:
    later = clock.now + timedelta(seconds=60)
    async with store.transaction() as tx:
        slow = await enqueued_id(tx, message("a", "1", priority=3))
        urgent = await enqueued_id(tx, message("b", "1", priority=0))
        future = await enqueued_id(tx, message("c", "1", available_at=later))
        behind_future = await enqueued_id(tx, message("c", "2"))
    leased = await store.lease("w", limit=1, lease_seconds=600)
    assert [m.id for m in leased] == [urgent]
    leased = await store.lease("w", limit=10, lease_seconds=600)
    assert [m.id for m in leased] == [slow]  # c1 not due yet; c2 must not overtake it
    clock.advance(60)
    leased = await store.lease("w", limit=10, lease_seconds=600)
    assert [m.id for m in leased] == [future]
    assert behind_future not in [m.id for m in leased]


async def test_expired_lease_is_recovered_by_another_owner(store: Store, clock: FakeClock) -> None:
    msg_id = await enqueued_id(store, message("a", "1"))
    [held] = await store.lease("dead-worker", limit=1, lease_seconds=30)
    assert held.lease_expires_at == clock.now + timedelta(seconds=30)
    clock.advance(29)
    assert await store.lease("live-worker", limit=1, lease_seconds=30) == []
    clock.advance(2)
    [recovered] = await store.lease("live-worker", limit=1, lease_seconds=30)
    assert recovered.id == msg_id
    assert recovered.lease_owner == "live-worker"
    assert recovered.attempts == 0  # an expired lease is not a failed attempt
    assert (held.deliveries, recovered.deliveries) == (1, 2)  # but it is a delivery

    with pytest.raises(LeaseLost, match="live-worker"):
        await store.complete(msg_id, "dead-worker")
    await store.complete(msg_id, "live-worker")
    assert (await store.get_message(msg_id)).status is MessageStatus.DONE  # type: ignore[union-attr]


async def test_owner_may_settle_its_own_expired_lease_if_nobody_took_it(
    store: Store, clock: FakeClock
) -> None:
    msg_id = await enqueued_id(store, message("a", "1"))
    await store.lease("w", limit=1, lease_seconds=1)
    clock.advance(10)
    await store.complete(msg_id, "w")
    assert (await store.get_message(msg_id)).status is MessageStatus.DONE  # type: ignore[union-attr]


async def test_settling_unknown_or_unleased_messages_fails(store: Store) -> None:
    with pytest.raises(LeaseLost, match="no such message"):
        await store.complete(999, "w")
    msg_id = await enqueued_id(store, message("a", "1"))
    with pytest.raises(LeaseLost, match="pending"):
        await store.complete(msg_id, "w")


async def test_retry_later_counts_attempts_and_waits(store: Store, clock: FakeClock) -> None:
    msg_id = await enqueued_id(store, message("a", "1"))
    await store.lease("w", limit=1, lease_seconds=30)
    retry_at = clock.now + timedelta(seconds=5)
    await store.retry_later(msg_id, "w", error="HTTP 503", available_at=retry_at)
    msg = await store.get_message(msg_id)
    assert msg is not None
    assert (msg.status, msg.attempts, msg.last_error) == (MessageStatus.PENDING, 1, "HTTP 503")
    assert msg.lease_owner is None
    assert await store.lease("w", limit=1, lease_seconds=30) == []
    clock.advance(5)
    [again] = await store.lease("w", limit=1, lease_seconds=30)
    assert again.attempts == 1
    assert again.deliveries == 2
    assert (await store.get_message(msg_id)).deliveries == 2  # type: ignore[union-attr]


async def test_defer_does_not_count_an_attempt(store: Store, clock: FakeClock) -> None:
    msg_id = await enqueued_id(store, message("a", "1"))
    for _ in range(5):
        await store.lease("w", limit=1, lease_seconds=30)
        await store.defer(
            msg_id, "w", available_at=clock.now + timedelta(seconds=1), reason="breaker open"
        )
        msg = await store.get_message(msg_id)
        assert msg is not None
        assert msg.attempts == 0
        assert msg.status is MessageStatus.PENDING
        clock.advance(1)
    assert msg.last_error == "breaker open"


async def test_dead_letter_blocks_its_aggregate_until_replayed(store: Store) -> None:
    async with store.transaction() as tx:
        a1 = await enqueued_id(tx, message("a", "1", system="billing"))
        a2 = await enqueued_id(tx, message("a", "2"))
        b1 = await enqueued_id(tx, message("b", "1"))
    await store.lease("w", limit=10, lease_seconds=30)
    await store.retry_later(a1, "w", error="503", available_at=store.clock())
    await store.lease("w", limit=10, lease_seconds=30)
    await store.dead_letter(a1, "w", reason="card_declined: not retryable")
    dead = await store.get_message(a1)
    assert dead is not None
    assert (dead.status, dead.attempts) == (MessageStatus.DEAD, 2)
    await store.complete(b1, "w")

    assert await store.lease("w", limit=10, lease_seconds=30) == []  # a2 is blocked
    assert [m.id for m in await store.list_messages(status=MessageStatus.DEAD)] == [a1]
    status = await store.outbox_status()
    assert status.counts["billing"] == {MessageStatus.DEAD: 1}
    assert status.total(MessageStatus.DEAD) == 1
    assert status.total(MessageStatus.PENDING) == 1

    replayed_now = await store.replay(a1)
    assert replayed_now is not None
    assert (replayed_now.id, replayed_now.status) == (a1, MessageStatus.PENDING)
    assert await store.replay(a1) is None  # no longer dead
    [replayed] = await store.lease("w", limit=10, lease_seconds=30)
    assert (replayed.id, replayed.attempts) == (a1, 0)
    await store.complete(a1, "w")
    assert [m.id for m in await store.lease("w", limit=10, lease_seconds=30)] == [a2]


async def test_discarded_dead_letter_unblocks_and_replay_all(store: Store) -> None:
    ids = {}
    async with store.transaction() as tx:
        for agg in ("a", "b", "c"):
            ids[agg, 1] = await enqueued_id(tx, message(agg, "1"))
            ids[agg, 2] = await enqueued_id(tx, message(agg, "2"))
    for m in await store.lease("w", limit=10, lease_seconds=30):
        await store.dead_letter(m.id, "w", reason="broken")
    assert len(await store.list_messages(status=MessageStatus.DEAD)) == 3
    discarded = await store.discard(ids["a", 1])
    assert discarded is not None
    assert discarded.status is MessageStatus.DISCARDED
    assert await store.discard(ids["a", 1]) is None
    assert [m.id for m in await store.lease("w", limit=10, lease_seconds=30)] == [ids["a", 2]]
    assert await store.replay_all() == 2
    leased = await store.lease("w", limit=10, lease_seconds=30)
    assert sorted(m.id for m in leased) == [ids["b", 1], ids["c", 1]]


async def test_complete_commits_with_the_next_step_or_not_at_all(store: Store) -> None:
    async with store.transaction() as tx:
        await create_operation(tx, "op-1")
        first = await enqueued_id(tx, message("cust-1", "erp", operation_id="op-1"))
    [leased] = await store.lease("w", limit=1, lease_seconds=30)
    assert leased.id == first

    class Crash(Exception):
        pass

    async def complete_then_crash() -> None:
        async with store.transaction() as tx:
            await tx.complete(first, "w")
            await tx.enqueue(message("cust-1", "crm", operation_id="op-1"))
            raise Crash

    with pytest.raises(Crash):
        await complete_then_crash()
    assert [m.status for m in await store.list_messages(operation_id="op-1")] == [
        MessageStatus.LEASED
    ]

    async with store.transaction() as tx:
        await tx.complete(first, "w")
        await tx.enqueue(message("cust-1", "crm", operation_id="op-1"))
    messages = await store.list_messages(operation_id="op-1")
    assert [(m.step, m.status) for m in messages] == [
        ("erp", MessageStatus.DONE),
        ("crm", MessageStatus.PENDING),
    ]


async def test_concurrent_leasers_on_two_stores_keep_order_and_never_double_lease(
    store_url: str,
) -> None:
    aggregates = [f"cust-{i}" for i in range(40)]
    per_aggregate = 6
    rng = random.Random(7)
    plan = [(agg, seq) for seq in range(per_aggregate) for agg in aggregates]
    # Interleave aggregates randomly while keeping each aggregate's own sequence order.
    rng.shuffle(plan)
    plan.sort(key=lambda item: item[1] + rng.random() * 3)
    order: dict[str, list[int]] = defaultdict(list)
    for agg, _ in plan:
        order[agg].append(len(order[agg]))

    async with open_store(store_url) as one, open_store(store_url) as two:
        seq_of: dict[int, tuple[str, int]] = {}
        counters: dict[str, int] = defaultdict(int)
        async with one.transaction() as tx:
            for agg, _ in plan:
                seq = counters[agg]
                counters[agg] += 1
                seq_of[await enqueued_id(tx, message(agg, str(seq)))] = (agg, seq)

        total = len(plan)
        leased_log: dict[str, list[int]] = defaultdict(list)
        intent_done: set[int] = set()
        live: set[int] = set()
        finished = anyio.Event()

        async def leaser(store: Store, owner: str) -> None:
            while not finished.is_set():
                batch = await store.lease(owner, limit=4, lease_seconds=600)
                if not batch:
                    await anyio.sleep(0.001)  # poll interval, not a correctness wait
                    continue
                for m in batch:
                    agg, seq = seq_of[m.id]
                    assert m.id not in live, f"message {m.id} leased twice"
                    assert m.id not in intent_done, f"message {m.id} leased after completion"
                    assert all(
                        earlier in intent_done
                        for earlier, (a, s) in seq_of.items()
                        if a == agg and s < seq
                    ), f"{agg} #{seq} leased before an earlier message completed"
                    live.add(m.id)
                    leased_log[agg].append(seq)
                for m in batch:
                    await anyio.lowlevel.checkpoint()  # let the other leasers interleave
                    live.discard(m.id)
                    intent_done.add(m.id)
                    await store.complete(m.id, owner)
                if len(intent_done) == total:
                    finished.set()

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for i in range(3):
                    tg.start_soon(leaser, one, f"one-{i}")
                    tg.start_soon(leaser, two, f"two-{i}")
        assert len(intent_done) == total
        for agg in aggregates:
            assert leased_log[agg] == list(range(per_aggregate))
        assert (await one.outbox_status()).total(MessageStatus.DONE) == total


async def test_outbox_event_wakes_a_waiting_dispatcher_after_commit_only(store: Store) -> None:
    woken = store.outbox_event()
    assert await store.lease("w", limit=1, lease_seconds=30) == []

    async def enqueue_then_fail() -> None:
        async with store.transaction() as tx:
            await tx.enqueue(message("a", "1"))
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await enqueue_then_fail()
    assert not woken.is_set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(store.enqueue, message("a", "1"))
        with anyio.fail_after(5):
            await woken.wait()
    assert len(await store.lease("w", limit=1, lease_seconds=30)) == 1
    assert store.outbox_event() is not woken  # a fresh event for the next wait


async def test_lease_matches_a_model_under_random_operations(
    store: Store, clock: FakeClock
) -> None:
    """Random enqueues, leases, settlements, replays and clock moves; every lease must
    return exactly the due aggregate heads a plain Python model predicts."""
    rng = random.Random(20261128)
    model: dict[int, dict[str, object]] = {}
    open_states = {"pending", "leased", "dead"}

    def expected(limit: int) -> list[int]:
        heads: dict[str, int] = {}
        for mid in sorted(model):
            m = model[mid]
            if m["status"] in open_states:
                heads.setdefault(str(m["agg"]), mid)
        due = [
            mid
            for mid in heads.values()
            if (model[mid]["status"] == "pending" and model[mid]["at"] <= clock.now)
            or (model[mid]["status"] == "leased" and model[mid]["until"] <= clock.now)
        ]
        due.sort(key=lambda mid: (model[mid]["prio"], mid))
        return due[:limit]

    for _ in range(400):
        action = rng.random()
        leased = [mid for mid, m in model.items() if m["status"] == "leased"]
        dead = [mid for mid, m in model.items() if m["status"] == "dead"]
        if action < 0.3:
            agg, prio = f"agg-{rng.randrange(6)}", rng.randrange(3)
            at = clock.now + timedelta(seconds=rng.choice([0, 0, 5]))
            mid = await enqueued_id(store, message(agg, "s", priority=prio, available_at=at))
            model[mid] = {"agg": agg, "prio": prio, "status": "pending", "at": at}
        elif action < 0.55:
            limit = rng.randrange(1, 5)
            want = expected(limit)
            got = await store.lease("w", limit=limit, lease_seconds=10)
            assert [m.id for m in got] == want
            for mid in want:
                model[mid].update(status="leased", until=clock.now + timedelta(seconds=10))
        elif action < 0.75 and leased:
            mid = rng.choice(leased)
            kind = rng.choice(["complete", "retry", "defer", "dead"])
            later = clock.now + timedelta(seconds=rng.choice([0, 3]))
            if kind == "complete":
                await store.complete(mid, "w")
                model[mid]["status"] = "done"
            elif kind == "retry":
                await store.retry_later(mid, "w", error="e", available_at=later)
                model[mid].update(status="pending", at=later)
            elif kind == "defer":
                await store.defer(mid, "w", available_at=later)
                model[mid].update(status="pending", at=later)
            else:
                await store.dead_letter(mid, "w", reason="r")
                model[mid]["status"] = "dead"
        elif action < 0.85 and dead:
            mid = rng.choice(dead)
            if rng.random() < 0.7:
                assert await store.replay(mid)
                model[mid].update(status="pending", at=clock.now)
            else:
                assert await store.discard(mid)
                model[mid]["status"] = "discarded"
        else:
            clock.advance(rng.choice([1, 4, 11]))


async def test_a_message_for_an_unknown_operation_is_refused(store: Store) -> None:
    from gateway.store import ConstraintViolation

    with pytest.raises(ConstraintViolation):
        await store.enqueue(message("a", "1", operation_id="no-such-operation"))
    assert (await store.outbox_status()).counts == {}


async def test_enqueue_many_and_get_message(store: Store, clock: FakeClock) -> None:
    await store.enqueue(message("a", "1"), message("a", "2", system="crm"))
    ids = [m.id for m in await store.list_messages()]
    assert len(ids) == 2
    second = await store.get_message(ids[1])
    assert second is not None
    assert (second.step, second.system, second.status) == ("2", "crm", MessageStatus.PENDING)
    assert (second.available_at, second.attempts, second.lease_owner) == (clock.now, 0, None)
    assert await store.get_message(ids[1] + 100) is None


async def test_purge_outbox_drops_only_old_settled_messages(store: Store, clock: FakeClock) -> None:
    async with store.transaction() as tx:
        done = await enqueued_id(tx, message("a", "1"))
        dead = await enqueued_id(tx, message("b", "1"))
        discarded = await enqueued_id(tx, message("c", "1"))
        pending = await enqueued_id(
            tx, message("d", "1", available_at=clock.now + timedelta(hours=1))
        )
    await store.lease("w", limit=10, lease_seconds=30)
    await store.complete(done, "w")
    await store.dead_letter(dead, "w", reason="broken")
    await store.dead_letter(discarded, "w", reason="broken")
    await store.discard(discarded)
    cutoff = clock.advance(60)
    recent = await enqueued_id(store, message("a", "2"))
    [leased] = await store.lease("w", limit=10, lease_seconds=30)
    assert leased.id == recent
    await store.complete(recent, "w")

    assert await store.purge_outbox(before=cutoff) == 2
    assert await store.get_message(done) is None
    assert await store.get_message(discarded) is None
    for kept in (dead, pending, recent):
        assert await store.get_message(kept) is not None
    # Purging history never changes what is leasable.
    assert await store.replay(dead)
    assert [m.id for m in await store.lease("w", limit=10, lease_seconds=30)] == [dead]


async def test_held_back_writes_leave_what_a_read_returns(store: Store, clock: FakeClock) -> None:
    """complete, upsert_step, enqueue and update_operation of a record read in the unit
    (which a backend may hold back until the unit's next statement) leave what a read
    returns, and update_operation answers the operation a read returns."""
    async with store.transaction() as tx:
        operation = await create_operation(tx, "op-quiet", aggregate="q")
        await tx.add_steps("op-quiet", ["one", "two"])
        await tx.enqueue(message("q", "one", operation_id="op-quiet"))
    [leased] = await store.lease("w", limit=1, lease_seconds=30)
    assert (leased.step, leased.payload) == ("one", {"aggregate": "q", "step": "one"})

    clock.advance(1)
    async with store.transaction() as tx:
        await tx.complete(leased.id, "w")
        current = await tx.get_operation("op-quiet")
        assert current is not None
        await tx.upsert_step("op-quiet", "one", status=StepStatus.SUCCEEDED, result={"n": 1})
        await tx.enqueue(message("q", "two", operation_id="op-quiet"))
        advanced = await tx.update_operation(
            current, status=OperationStatus.RUNNING, result={"one": {"n": 1}}, error=None
        )
        [follow] = await tx.lease("w", limit=1, lease_seconds=30)
    assert advanced is not None
    assert advanced == await store.get_operation("op-quiet")
    assert advanced.updated_at == clock.now
    assert advanced.created_at == operation.created_at
    assert (advanced.status, advanced.result) == (OperationStatus.RUNNING, {"one": {"n": 1}})
    assert (await store.get_message(leased.id)).status is MessageStatus.DONE
    assert follow.step == "two"
    steps = {s.name: s for s in await store.get_steps("op-quiet")}
    assert (steps["one"].status, steps["one"].attempts, steps["one"].result) == (
        StepStatus.SUCCEEDED,
        0,
        {"n": 1},
    )
    assert steps["two"].status is StepStatus.PENDING


async def test_held_back_completion_of_a_lost_lease_rolls_the_unit_back(
    store: Store, clock: FakeClock
) -> None:
    async with store.transaction() as tx:
        await create_operation(tx, "op-lost", aggregate="l")
        msg_id = await enqueued_id(tx, message("l", "1", operation_id="op-lost"))
    await store.lease("dead-worker", limit=1, lease_seconds=30)
    clock.advance(31)
    await store.lease("live-worker", limit=1, lease_seconds=30)

    async def complete_then_read() -> None:
        async with store.transaction() as tx:
            await tx.complete(msg_id, "dead-worker")
            await tx.enqueue(message("l", "2", operation_id="op-lost"))
            await tx.get_operation("op-lost")  # the held-back completion goes out here

    async def complete_last() -> None:
        async with store.transaction() as tx:
            await tx.enqueue(message("l", "3", operation_id="op-lost"))
            await tx.complete(msg_id, "dead-worker")  # fails at the unit's end

    async def complete_unknown() -> None:
        async with store.transaction() as tx:
            await tx.complete(999, "w")

    async def advance_unknown() -> None:
        async with store.transaction() as tx:
            operation = await tx.get_operation("op-lost")
            assert operation is not None
            gone = dataclasses.replace(operation, id="op-gone")
            await tx.update_operation(gone, status=OperationStatus.SUCCEEDED)

    with pytest.raises(LeaseLost, match="live-worker"):
        await complete_then_read()
    with pytest.raises(LeaseLost, match="live-worker"):
        await complete_last()
    with pytest.raises(LeaseLost, match="no such message"):
        await complete_unknown()
    with pytest.raises(StaleOperation, match="op-gone"):
        await advance_unknown()
    held = await store.get_message(msg_id)
    assert (held.status, held.lease_owner) == (MessageStatus.LEASED, "live-worker")
    # nothing of the failed units stayed: no second message, the operation unchanged
    assert await store.lease("x", limit=10, lease_seconds=30) == []
    assert (await store.get_operation("op-lost")).status is OperationStatus.PENDING
