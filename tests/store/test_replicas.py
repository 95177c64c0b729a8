"""Several stores on one database, as several gateway replicas share it: the lease hands
each message to one holder at a time, keeps each customer's order across the stores, and
fences off a holder whose lease expired and was taken over."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from canonical import System
from gateway.store import IdempotencyOutcome, LeaseLost, Store, open_store

from .conftest import FakeClock
from .helpers import create_operation, message

pytestmark = pytest.mark.anyio

CUSTOMERS = 12
PER_CUSTOMER = 6


async def test_two_stores_leasing_at_once_never_share_a_message_and_keep_order(
    store: Store, store_url: str, clock: FakeClock
) -> None:
    async with store.transaction() as tx:
        for n in range(PER_CUSTOMER):
            await tx.enqueue(*(message(f"cust-{c}", f"{n}") for c in range(CUSTOMERS)))
    in_flight: dict[str, int] = {}  # customer -> message leased and not yet settled
    held: set[int] = set()
    done: dict[str, list[int]] = {f"cust-{c}": [] for c in range(CUSTOMERS)}

    async def replica(replica_store: Store, name: str) -> None:
        idle = 0
        while idle < 20:
            leased = await replica_store.lease(name, limit=4, lease_seconds=600)
            if not leased:
                idle += 1
                await anyio.sleep(0.005)
                continue
            idle = 0
            for m in leased:
                assert m.id not in held, f"message {m.id} leased twice"
                assert (
                    m.aggregate_key not in in_flight
                ), f"{m.aggregate_key}: {m.id} leased while {in_flight.get(m.aggregate_key)} is"
                held.add(m.id)
                in_flight[m.aggregate_key] = m.id
            await anyio.lowlevel.checkpoint()  # the other replica runs while these are held
            for m in leased:
                del in_flight[m.aggregate_key]  # before the commit: no false alarm
                await replica_store.complete(m.id, name)
                held.discard(m.id)
                done[m.aggregate_key].append(int(m.step))

    async with open_store(store_url, clock=clock) as other:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(replica, store, "replica-a/1")
                tg.start_soon(replica, other, "replica-b/1")
    assert all(steps == list(range(PER_CUSTOMER)) for steps in done.values()), done


async def test_a_holder_whose_lease_expired_and_was_taken_over_is_fenced(
    store: Store, store_url: str, clock: FakeClock
) -> None:
    async with store.transaction() as tx:
        await create_operation(tx, "op-1", aggregate="cust-1")
        await tx.enqueue(message("cust-1", "erp", operation_id="op-1"))
    async with open_store(store_url, clock=clock) as other:
        [first] = await store.lease("replica-a/1", limit=1, lease_seconds=30)
        assert await other.lease("replica-b/1", limit=1, lease_seconds=30) == []
        clock.advance(31)  # replica a stalls past its lease
        [taken] = await other.lease("replica-b/1", limit=1, lease_seconds=30)
        assert taken.id == first.id
        assert taken.deliveries == first.deliveries + 1
        with pytest.raises(LeaseLost, match="replica-b/1"):
            await store.complete(first.id, "replica-a/1")
        with pytest.raises(LeaseLost):
            await store.retry_later(first.id, "replica-a/1", error="late", available_at=clock.now)
        await other.complete(taken.id, "replica-b/1")
    settled = await store.get_message(first.id)
    assert settled is not None
    assert (settled.status.value, settled.lease_owner) == ("done", "replica-b/1")


async def test_an_idempotency_key_is_shared_between_stores(
    store: Store, store_url: str, clock: FakeClock
) -> None:
    """A retry landing on another replica gets the first answer; a concurrent one, while
    the first is in flight, the conflict."""
    async with open_store(store_url, clock=clock) as other:
        async with store.transaction() as tx:
            first = await tx.begin_idempotent("widget", "k1", "fp")
        assert first.outcome is IdempotencyOutcome.NEW
        async with other.transaction() as tx:
            concurrent = await tx.begin_idempotent("widget", "k1", "fp")
        assert concurrent.outcome is IdempotencyOutcome.CONFLICT
        async with store.transaction() as tx:
            await tx.complete_idempotent("widget", "k1", {"id": "op-1"})
        async with other.transaction() as tx:
            retry = await tx.begin_idempotent("widget", "k1", "fp")
        assert retry.outcome is IdempotencyOutcome.REPLAY
        assert retry.record.response == {"id": "op-1"}


async def test_concurrent_claims_of_one_key_from_two_stores_make_one_new(
    store: Store, store_url: str, clock: FakeClock
) -> None:
    outcomes: list[IdempotencyOutcome] = []

    async def claim(on: Store) -> None:
        async with on.transaction() as tx:
            result = await tx.begin_idempotent("widget", "k2", "fp")
            outcomes.append(result.outcome)
            await anyio.sleep(0.05)  # hold the claim open while the other one tries

    async with open_store(store_url, clock=clock) as other, anyio.create_task_group() as tg:
        for on in (store, other, store, other):
            tg.start_soon(claim, on)
    assert sorted(outcomes) == sorted(
        [IdempotencyOutcome.NEW] + [IdempotencyOutcome.CONFLICT] * 3
    ), outcomes


async def test_concurrent_links_of_one_customer_from_two_stores_lose_no_id(
    store: Store, store_url: str, clock: FakeClock
) -> None:
    async with open_store(store_url, clock=clock) as other:
        for n in range(10):
            known = await store.link({System.ERP: f"100{n}"})
            async with anyio.create_task_group() as tg:
                tg.start_soon(store.link, {System.ERP: f"100{n}", System.CRM: f"001C{n}"})
                tg.start_soon(other.link, {System.ERP: f"100{n}", System.BILLING: f"cus_{n}"})
                tg.start_soon(other.link, {System.SUPPORT: f"9{n}", System.CRM: f"001C{n}"})
            record = await store.get_xref(known.canonical_id)
            assert record is not None
            assert record.ids() == {
                System.ERP: f"100{n}",
                System.CRM: f"001C{n}",
                System.BILLING: f"cus_{n}",
                System.SUPPORT: f"9{n}",
            }, record
