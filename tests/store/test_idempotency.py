"""Idempotency records: the IETF Idempotency-Key draft's outcomes, expiry and races."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest

from gateway.store import (
    IdempotencyOutcome,
    IdempotencyState,
    IdempotencyStateError,
    Store,
    open_store,
    payload_fingerprint,
)

from .conftest import FakeClock
from .helpers import create_operation

pytestmark = pytest.mark.anyio

FP = payload_fingerprint({"opportunity": "006A", "amount": "1200.00"})
OTHER = payload_fingerprint({"opportunity": "006B", "amount": "1200.00"})


def test_fingerprint_ignores_key_order_but_not_values() -> None:
    assert payload_fingerprint({"a": 1, "b": [1, 2]}) == payload_fingerprint({"b": [1, 2], "a": 1})
    assert payload_fingerprint({"a": 1}) != payload_fingerprint({"a": 2})
    assert len(FP) == 64


async def test_new_then_conflict_then_replay_then_mismatch(store: Store) -> None:
    async with store.transaction() as tx:
        first = await tx.begin_idempotent("widget", "k1", FP, operation_id="op-1")
        await create_operation(tx, "op-1")
    assert first.outcome is IdempotencyOutcome.NEW
    assert first.record.state is IdempotencyState.IN_FLIGHT

    async with store.transaction() as tx:
        again = await tx.begin_idempotent("widget", "k1", FP)
    assert again.outcome is IdempotencyOutcome.CONFLICT
    assert again.record.operation_id == "op-1"

    async with store.transaction() as tx:
        other = await tx.begin_idempotent("widget", "k1", OTHER)
    assert other.outcome is IdempotencyOutcome.MISMATCH

    response = {"operation": {"id": "op-1", "status": "PENDING"}}
    async with store.transaction() as tx:
        await tx.complete_idempotent("widget", "k1", response)
        done = await tx.get_idempotency("widget", "k1")
    assert done is not None
    assert done.state is IdempotencyState.COMPLETED

    async with store.transaction() as tx:
        replay = await tx.begin_idempotent("widget", "k1", FP)
        mismatch = await tx.begin_idempotent("widget", "k1", OTHER)
    assert replay.outcome is IdempotencyOutcome.REPLAY
    assert replay.record.response == response
    assert mismatch.outcome is IdempotencyOutcome.MISMATCH


async def test_claim_and_complete_in_one_transaction_then_replay(store: Store) -> None:
    response = {"operation": {"id": "op-1", "status": "PENDING"}}
    async with store.transaction() as tx:
        claim = await tx.begin_idempotent("widget", "k1", FP)
        await create_operation(tx, "op-1")
        await tx.complete_idempotent("widget", "k1", response, operation_id="op-1")
    assert claim.outcome is IdempotencyOutcome.NEW
    done = await store.get_idempotency("widget", "k1")
    assert done is not None
    assert (done.state, done.operation_id, done.response) == (
        IdempotencyState.COMPLETED,
        "op-1",
        response,
    )
    assert done.expires_at == claim.record.expires_at
    async with store.transaction() as tx:
        replay = await tx.begin_idempotent("widget", "k1", FP)
    assert replay.outcome is IdempotencyOutcome.REPLAY
    assert replay.record == done


async def test_keys_are_scoped_by_client(store: Store) -> None:
    async with store.transaction() as tx:
        a = await tx.begin_idempotent("widget", "same-key", FP)
        b = await tx.begin_idempotent("portal", "same-key", OTHER)
    assert a.outcome is b.outcome is IdempotencyOutcome.NEW


async def test_expired_record_counts_as_absent_and_is_purged(
    store: Store, clock: FakeClock
) -> None:
    ttl = timedelta(hours=1)
    async with store.transaction() as tx:
        await tx.begin_idempotent("widget", "k1", FP, ttl=ttl)
        await tx.complete_idempotent("widget", "k1", {"ok": True})
        await tx.begin_idempotent("widget", "k2", FP, ttl=timedelta(hours=5))
    clock.advance(3600 - 1)
    assert await store.get_idempotency("widget", "k1") is not None
    clock.advance(1)
    assert await store.get_idempotency("widget", "k1") is None

    async with store.transaction() as tx:
        with pytest.raises(IdempotencyStateError):
            await tx.complete_idempotent("widget", "k1", {"late": True})
    assert await store.purge_expired() == 1
    assert await store.get_idempotency("widget", "k2") is not None

    async with store.transaction() as tx:
        fresh = await tx.begin_idempotent("widget", "k1", OTHER, ttl=ttl)
    assert fresh.outcome is IdempotencyOutcome.NEW
    assert fresh.record.expires_at == clock.now + ttl
    assert fresh.record.response is None


async def test_default_expiry_is_24_hours(store: Store, clock: FakeClock) -> None:
    async with store.transaction() as tx:
        result = await tx.begin_idempotent("widget", "k1", FP)
    assert result.record.expires_at - clock.now == timedelta(hours=24)


async def test_release_lets_the_client_retry(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.begin_idempotent("widget", "k1", FP)
    async with store.transaction() as tx:
        assert await tx.release_idempotent("widget", "k1") is True
        assert (await tx.begin_idempotent("widget", "k1", FP)).outcome is IdempotencyOutcome.NEW


async def test_rollback_releases_the_key(store: Store) -> None:
    async def claim_then_fail() -> None:
        async with store.transaction() as tx:
            await tx.begin_idempotent("widget", "k1", FP)
            raise RuntimeError("validation failed after the claim")

    with pytest.raises(RuntimeError):
        await claim_then_fail()
    async with store.transaction() as tx:
        assert (await tx.begin_idempotent("widget", "k1", FP)).outcome is IdempotencyOutcome.NEW


async def _race(stores: list[Store], contenders: int) -> list[IdempotencyOutcome]:
    outcomes: list[IdempotencyOutcome] = []
    go = anyio.Event()

    async def contend(store: Store, n: int) -> None:
        await go.wait()
        async with store.transaction() as tx:
            result = await tx.begin_idempotent("widget", "race", FP)
            if result.outcome is IdempotencyOutcome.NEW:
                await create_operation(tx, f"op-{n}")
            outcomes.append(result.outcome)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for n in range(contenders):
                tg.start_soon(contend, stores[n % len(stores)], n)
            await anyio.wait_all_tasks_blocked()
            go.set()
    return outcomes


async def test_concurrent_begins_in_one_process_yield_exactly_one_new(store: Store) -> None:
    outcomes = await _race([store], 20)
    assert outcomes.count(IdempotencyOutcome.NEW) == 1
    assert outcomes.count(IdempotencyOutcome.CONFLICT) == 19


async def test_concurrent_begins_on_two_connections_yield_exactly_one_new(
    store_url: str,
) -> None:
    async with open_store(store_url) as one, open_store(store_url) as two:
        outcomes = await _race([one, two], 20)
        assert outcomes.count(IdempotencyOutcome.NEW) == 1
        assert outcomes.count(IdempotencyOutcome.CONFLICT) == 19
        page = await one.list_operations()
        assert len(page.items) == 1
