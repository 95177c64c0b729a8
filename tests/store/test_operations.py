"""Operations, saga steps and change notifications."""

from __future__ import annotations

import dataclasses

import anyio
import pytest

from gateway.store import (
    Operation,
    OperationStatus,
    Reader,
    StaleOperation,
    StepStatus,
    Store,
)

from .conftest import FakeClock
from .helpers import create_operation

pytestmark = pytest.mark.anyio


async def test_create_get_update(store: Store, clock: FakeClock) -> None:
    async with store.transaction() as tx:
        created = await create_operation(tx, "op-1", aggregate="cust-9", correlation="c-9")
    assert created.status is OperationStatus.PENDING
    assert await store.get_operation("op-1") == created
    assert await store.get_operation("nope") is None

    clock.advance(5)
    async with store.transaction() as tx:
        running = await tx.update_operation("op-1", status=OperationStatus.RUNNING)
    assert running is not None
    assert running.status is OperationStatus.RUNNING
    assert running.updated_at == clock.now
    assert running.created_at == created.created_at

    async with store.transaction() as tx:
        await tx.update_operation(
            "op-1", status=OperationStatus.NEEDS_ATTENTION, error="billing: card declined"
        )
        done = await tx.update_operation("op-1", result={"erp_order": "5000001"})
    assert done is not None
    assert done.status is OperationStatus.NEEDS_ATTENTION  # kept: not given
    assert (done.error, done.result) == ("billing: card declined", {"erp_order": "5000001"})

    async with store.transaction() as tx:
        cleared = await tx.update_operation("op-1", status=OperationStatus.RUNNING, error=None)
    assert cleared is not None
    assert cleared.error is None
    assert cleared.result == {"erp_order": "5000001"}

    async with store.transaction() as tx:
        assert await tx.update_operation("nope", status=OperationStatus.FAILED) is None


async def test_list_operations_filters_and_pages(store: Store) -> None:
    async with store.transaction() as tx:
        for i in range(7):
            await create_operation(tx, f"op-{i}", aggregate=f"cust-{i % 2}", correlation=f"c-{i}")
        await tx.update_operation("op-3", status=OperationStatus.SUCCEEDED)

    seen: list[str] = []
    after = None
    while True:
        page = await store.list_operations(limit=3, after=after)
        seen += [op.id for op in page.items]
        if page.next_cursor is None:
            break
        after = page.next_cursor
    assert seen == [f"op-{i}" for i in reversed(range(7))]

    by_agg = await store.list_operations(aggregate_key="cust-1")
    assert [op.id for op in by_agg.items] == ["op-5", "op-3", "op-1"]
    by_status = await store.list_operations(status=OperationStatus.SUCCEEDED)
    assert [op.id for op in by_status.items] == ["op-3"]
    by_corr = await store.list_operations(correlation_id="c-4")
    assert [op.id for op in by_corr.items] == ["op-4"]
    with pytest.raises(ValueError, match="cursor"):
        await store.list_operations(after="not-a-cursor")


async def test_steps_keep_their_order_results_and_attempts(store: Store) -> None:
    async with store.transaction() as tx:
        await create_operation(tx, "op-1")
        for name in ("erp.order", "billing.subscription", "support.entitlement"):
            await tx.upsert_step("op-1", name, status=StepStatus.PENDING)
    async with store.transaction() as tx:
        await tx.upsert_step("op-1", "erp.order", status=StepStatus.RUNNING, add_attempt=True)
        await tx.upsert_step(
            "op-1", "erp.order", status=StepStatus.FAILED, error="503", add_attempt=True
        )
        await tx.upsert_step(
            "op-1",
            "erp.order",
            status=StepStatus.SUCCEEDED,
            result={"SalesOrder": "5000001"},
            error=None,
        )
    steps = await store.get_steps("op-1")
    assert [s.name for s in steps] == ["erp.order", "billing.subscription", "support.entitlement"]
    erp = steps[0]
    assert (erp.status, erp.attempts, erp.result, erp.error) == (
        StepStatus.SUCCEEDED,
        2,
        {"SalesOrder": "5000001"},
        None,
    )
    assert steps[1].status is StepStatus.PENDING


async def test_watchers_see_committed_changes_only(store: Store) -> None:
    async with store.transaction() as tx:
        await create_operation(tx, "op-1")
    seen: list[Operation] = []
    ready = anyio.Event()

    async def watch() -> None:
        async with store.watch_operation("op-1") as changes:
            ready.set()
            async for op in changes:
                seen.append(op)
                if op.status.terminal:
                    return

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            await ready.wait()

            async def fail_inside() -> None:
                async with store.transaction() as tx:
                    await tx.update_operation("op-1", status=OperationStatus.FAILED)
                    raise RuntimeError("rolled back")

            with pytest.raises(RuntimeError):
                await fail_inside()
            async with store.transaction() as tx:
                await tx.update_operation("op-1", status=OperationStatus.RUNNING)
            await anyio.wait_all_tasks_blocked()
            async with store.transaction() as tx:
                await tx.update_operation("op-1", status=OperationStatus.SUCCEEDED)
    assert [op.status for op in seen] == [OperationStatus.RUNNING, OperationStatus.SUCCEEDED]


async def test_slow_watcher_gets_the_latest_state(store: Store) -> None:
    async with store.transaction() as tx:
        await create_operation(tx, "op-1")
    async with store.watch_operation("op-1") as changes:
        for status in (OperationStatus.RUNNING, OperationStatus.NEEDS_ATTENTION):
            async with store.transaction() as tx:
                await tx.update_operation("op-1", status=status)
        with anyio.fail_after(5):
            latest = await changes.__anext__()
        assert latest.status is OperationStatus.NEEDS_ATTENTION


async def test_closing_the_store_ends_watches(store_url: str) -> None:
    from gateway.store import open_store

    store = open_store(store_url)
    async with store:
        async with store.transaction() as tx:
            await create_operation(tx, "op-1")
        ended = anyio.Event()

        async def watch() -> None:
            async with store.watch_operation("op-1") as changes:
                async for _ in changes:
                    pass
            ended.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            await anyio.wait_all_tasks_blocked()
            await store.close()
            with anyio.fail_after(5):
                await ended.wait()


async def test_watchers_are_bounded(store: Store) -> None:
    from gateway.store import TooManyWatchers

    store.notifier = type(store.notifier)(max_watchers=2)
    async with store.watch_operation("a"), store.watch_operation("b"):
        with pytest.raises(TooManyWatchers, match="limit 2"):
            async with store.watch_operation("c"):
                pass
    async with store.watch_operation("c"):
        pass


async def test_recent_operation_is_the_last_committed_version(
    store: Store, clock: FakeClock
) -> None:
    async with store.transaction() as tx:
        created = await create_operation(tx, "op-r", aggregate="cust-r", correlation="c-r")
    assert store.recent_operation("op-r") == created
    clock.advance(1)
    async with store.transaction() as tx:
        running = await tx.update_operation("op-r", status=OperationStatus.RUNNING)
    assert store.recent_operation("op-r") == running
    # a rolled-back change is not remembered

    async def rolled_back() -> None:
        async with store.transaction() as tx:
            await tx.update_operation("op-r", status=OperationStatus.FAILED)
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        await rolled_back()
    assert store.recent_operation("op-r") == running
    # finished operations take no more steps: forgotten
    async with store.transaction() as tx:
        await tx.update_operation("op-r", status=OperationStatus.SUCCEEDED)
    assert store.recent_operation("op-r") is None
    assert store.recent_operation("never") is None


async def test_verified_advance_applies_to_the_remembered_version_only(
    store: Store, clock: FakeClock
) -> None:
    async with store.transaction() as tx:
        await create_operation(tx, "op-v", aggregate="cust-v", correlation="c-v")
    remembered = store.recent_operation("op-v")
    assert remembered is not None
    clock.advance(1)
    async with store.transaction() as tx:
        advanced = await tx.update_operation(
            remembered, status=OperationStatus.RUNNING, result={"a": 1}, verify=True
        )
    assert advanced is not None
    assert await store.get_operation("op-v") == advanced
    # the row moved on (another writer): the remembered version no longer applies
    clock.advance(1)
    async with store.transaction() as tx:
        await tx.update_operation("op-v", result={"a": 2})

    async def advance(version: Operation) -> None:
        async with store.transaction() as tx:
            await tx.update_operation(version, status=OperationStatus.SUCCEEDED, verify=True)

    with pytest.raises(StaleOperation):
        await advance(advanced)
    current = await store.get_operation("op-v")
    assert current is not None
    assert (current.status, current.result) == (OperationStatus.RUNNING, {"a": 2})
    # a given record whose row is gone is stale too, verified or not
    gone = dataclasses.replace(advanced, id="op-gone")
    with pytest.raises(StaleOperation, match="op-gone"):
        await advance(gone)


async def test_find_holding_names_the_unsettled_operation_holding_a_business_key(
    store: Store,
) -> None:
    async def add(
        op_id: str, kind: str, aggregate: str, deal: str, status: OperationStatus
    ) -> None:
        async with store.transaction() as tx:
            await tx.create_operation(
                id=op_id,
                kind=kind,
                correlation_id=op_id,
                client_id="widget",
                aggregate_key=aggregate,
                input={"opportunityId": deal, "lines": [1, 2]},
                status=status,
            )

    await add("op-old", "closeOpportunity", "cust-1", "006A", OperationStatus.FAILED)
    await add("op-live", "closeOpportunity", "cust-1", "006A", OperationStatus.NEEDS_ATTENTION)
    await add("op-other-deal", "closeOpportunity", "cust-1", "006B", OperationStatus.RUNNING)
    await add("op-other-kind", "renewSubscription", "cust-1", "006A", OperationStatus.RUNNING)
    await add("op-other-customer", "closeOpportunity", "cust-2", "006A", OperationStatus.RUNNING)
    settled = frozenset({OperationStatus.FAILED, OperationStatus.COMPENSATED})

    async def holder(deal: str, within: frozenset[OperationStatus] = settled) -> str | None:
        found = await store.find_holding(
            aggregate_key="cust-1",
            kind="closeOpportunity",
            field="opportunityId",
            value=deal,
            settled=within,
        )
        async with store.reader() as r:  # the interface's own paging answer agrees
            paged = await Reader.find_holding(
                r,
                aggregate_key="cust-1",
                kind="closeOpportunity",
                field="opportunityId",
                value=deal,
                settled=within,
            )
        assert paged == found
        return None if found is None else found.id

    assert await holder("006A") == "op-live"
    assert await holder("006B") == "op-other-deal"
    assert await holder("006C") is None
    everything_settles = frozenset(OperationStatus)
    assert await holder("006A", everything_settles) is None
    assert await holder("006A", frozenset()) == "op-live"  # the newest first
    with pytest.raises(ValueError, match="field"):
        await store.find_holding(
            aggregate_key="cust-1",
            kind="closeOpportunity",
            field="x') OR 1=1 --",
            value="006A",
            settled=settled,
        )
