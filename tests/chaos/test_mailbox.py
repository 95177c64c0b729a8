"""A saturated actor serves the urgent first; a stopped one answers everyone and leaves
nothing behind. Against the real sandbox systems, with added latency to hold the workers.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from actors import Systems
from actors.errors import ActorStopped, SystemTimeout, Throttled
from actors.messages import Message, Priority
from canonical import System
from gateway.governance.systems import RetryPolicy
from tests.chaos.world import World, outcome, until

pytestmark = pytest.mark.anyio

ONE_TRY = RetryPolicy(attempts=1, base=0.01, cap=0.02)
#: how soon a stop must answer every pending ask (generous: a loaded 2-core machine)
STOP_WITHIN = 0.5


def actor_tasks(system: System) -> list[str]:
    """Names of the running tasks that belong to ``system``'s actor (workers, its run)."""
    return [
        task.get_name()
        for task in asyncio.all_tasks()
        if task.get_name().startswith(f"{system}-") and not task.done()
    ]


def client_tasks() -> set[str]:
    """Names of the running tasks, less the sandbox servers' own request handlers (the
    vendor's side: a slow answer goes on sleeping after its client hung up).
    """
    return {
        task.get_name()
        for task in asyncio.all_tasks()
        if not task.done() and "RequestResponseCycle" not in task.get_coro().__qualname__
    }


@pytest.mark.parametrize("system", list(System), ids=str)
async def test_interactive_asks_are_served_before_queued_batch_asks(
    world: World, system: System
) -> None:
    sandbox = world[system]
    # one worker: the order calls complete in is the order the mailbox handed them out
    async with world.systems(system, workers=1, retry=ONE_TRY) as systems:
        actor = systems[system]
        blocker, *rest = world.reads(system, 9)
        batch, interactive = rest[:4], rest[4:]
        done: list[str] = []

        async def ask(message: Message, priority: Priority, label: str) -> None:
            await actor.ask(message, priority=priority, timeout=5.0)
            done.append(label)

        def depth(priority: str) -> int:
            return actor.snapshot().mailbox_depth[priority]

        await sandbox.chaos(latency_ms=[500, 500])  # holds the worker while the rest queue
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask, blocker, Priority.BATCH, "blocker")
                await until(lambda: actor.snapshot().in_flight == 1)
                # saturated: everything from here on queues, BATCH first
                for n, message in enumerate(batch):
                    tg.start_soon(ask, message, Priority.BATCH, f"batch{n}")
                await until(lambda: depth("batch") == len(batch))
                for n, message in enumerate(interactive):
                    tg.start_soon(ask, message, Priority.INTERACTIVE, f"interactive{n}")
                await until(lambda: depth("interactive") == len(interactive))
                assert done == [], "the saturation ended before everything was queued"
                await sandbox.chaos(latency_ms=[0, 0])  # the queued calls are quick
    assert done == [
        "blocker",
        *(f"interactive{n}" for n in range(len(interactive))),
        *(f"batch{n}" for n in range(len(batch))),
    ]


@pytest.mark.parametrize("system", list(System), ids=str)
async def test_a_saturated_actor_drops_expired_asks_and_sheds_the_least_urgent(
    world: World, system: System
) -> None:
    sandbox = world[system]
    workers, room = 1, 4
    async with world.systems(system, workers=workers, mailbox=room, retry=ONE_TRY) as systems:
        actor = systems[system]
        reads = world.reads(system, 1 + room + 2)
        blocker, queued, urgent = reads[0], reads[1 : 1 + room], reads[1 + room :]
        await sandbox.chaos(latency_ms=[600, 600])  # holds the one worker
        before = await sandbox.requests()
        results: list[Any] = [None] * len(reads)

        def depth() -> int:
            return sum(actor.snapshot().mailbox_depth.values())

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                call = actor.ask(blocker, priority=Priority.BATCH, timeout=5.0)
                tg.start_soon(ask_recorded, results, 0, call)
                await until(lambda: actor.snapshot().in_flight == workers)
                # BATCH asks that will expire while queued behind the slow call
                for n, read in enumerate(queued, start=1):
                    call = actor.ask(read, priority=Priority.BATCH, timeout=0.4)
                    tg.start_soon(ask_recorded, results, n, call)
                await until(lambda: depth() == room)
                # the mailbox is full: two INTERACTIVE asks push the two newest BATCH out
                for n, read in enumerate(urgent, start=1 + room):
                    call = actor.ask(read, priority=Priority.INTERACTIVE, timeout=5.0)
                    tg.start_soon(ask_recorded, results, n, call)
                await until(lambda: actor.snapshot().shed["batch"] == 2)
                await sandbox.chaos(latency_ms=[0, 0])  # the urgent calls are quick
        assert isinstance(results[0], dict)
        shed, expired = results[1 + room - 2 : 1 + room], results[1 : 1 + room - 2]
        assert all(isinstance(r, Throttled) and r.code == "THROTTLED" for r in shed), shed
        assert all(isinstance(r, SystemTimeout) for r in expired), expired
        assert all(isinstance(r, dict) for r in results[1 + room :])
        # the blocker and the two urgent reads: nothing shed or expired reached the system
        assert await sandbox.requests() == before + 3


async def test_asks_that_expire_in_the_mailbox_are_counted_as_expired(world: World) -> None:
    """``StatsSnapshot.expired`` counts asks dropped unsent because their deadline passed
    while queued (``crosswalk_expired_messages`` in /metrics).
    """
    system = System.ERP
    await world[system].chaos(latency_ms=[500, 500])
    async with world.systems(system, workers=1, retry=ONE_TRY) as systems:
        actor = systems[system]
        blocker, *queued = world.reads(system, 3)
        results: list[Any] = [None] * 3
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                call = actor.ask(blocker, priority=Priority.BATCH, timeout=5.0)
                tg.start_soon(ask_recorded, results, 0, call)
                await until(lambda: actor.snapshot().in_flight == 1)
                for n, read in enumerate(queued, start=1):
                    call = actor.ask(read, priority=Priority.BATCH, timeout=0.1)
                    tg.start_soon(ask_recorded, results, n, call)
        assert all(isinstance(r, SystemTimeout) for r in results[1:]), results
        # both were dropped unsent (the system saw only the blocker) ...
        assert await world[system].requests() == 1
        # ... so both are expired
        assert actor.snapshot().expired == 2


async def ask_recorded(results: list[Any], index: int, call: Any) -> None:
    results[index] = await outcome(call)


@pytest.mark.parametrize("system", list(System), ids=str)
async def test_stopping_an_actor_under_load_answers_every_ask_and_leaves_nothing_running(
    world: World, system: System
) -> None:
    sandbox = world[system]
    workers, asks = 2, 12
    async with world.systems(system, workers=workers, retry=ONE_TRY) as systems:
        actor = systems[system]
        reads = world.reads(system, asks)
        await sandbox.chaos(latency_ms=[3000, 3000])
        before = await sandbox.requests()
        results: list[Any] = [None] * asks

        def queued() -> int:
            return sum(actor.snapshot().mailbox_depth.values())

        with anyio.fail_after(2.5):  # every ask answered before any slow answer
            async with anyio.create_task_group() as tg:
                for n, read in enumerate(reads):
                    call = actor.ask(read, priority=Priority.SYNC, timeout=5.0)
                    tg.start_soon(ask_recorded, results, n, call)
                await until(lambda: actor.snapshot().in_flight == workers)
                await until(lambda: queued() == asks - workers)
                await sandbox.until_requests(before + workers)  # the calls are upstream
                stopped_at = anyio.current_time()
                actor.stop()
        assert anyio.current_time() - stopped_at < STOP_WITHIN
        assert all(isinstance(r, ActorStopped) for r in results), results
        await until(lambda: not actor_tasks(system), within=1.0)
        with pytest.raises(ActorStopped):
            await actor.ask(reads[0], priority=Priority.INTERACTIVE)
        # the others are untouched, and only the calls that were in flight reached the system
        await world.assert_serving(systems, world.others(system))
        assert await sandbox.requests() == before + workers


async def test_leaving_systems_under_load_answers_every_ask_and_leaves_no_task(
    world: World,
) -> None:
    workers, asks = 2, 6
    baseline = client_tasks()
    before = {system: await world[system].requests() for system in System}
    for system in System:
        await world[system].chaos(latency_ms=[3000, 3000])
    results: list[Any] = [None] * (asks * len(System))
    with anyio.fail_after(2.5):  # every ask answered before any slow answer
        async with anyio.create_task_group() as tg:
            changes = {s: {"workers": workers, "retry": ONE_TRY} for s in System}
            async with Systems(world.policy(changes)) as systems:
                for n, (system, read) in enumerate(
                    (s, r) for s in System for r in world.reads(s, asks)
                ):
                    call = systems[system].ask(read, priority=Priority.SYNC, timeout=5.0)
                    tg.start_soon(ask_recorded, results, n, call)
                for system in System:
                    await until(lambda s=system: systems[s].snapshot().in_flight == workers)
                    await world[system].until_requests(before[system] + workers)
                stopped_at = anyio.current_time()
            # leaving Systems stopped all four while every ask was pending
    assert anyio.current_time() - stopped_at < STOP_WITHIN
    assert all(isinstance(r, ActorStopped) for r in results), results
    assert client_tasks() <= baseline
    for system in System:
        assert await world[system].requests() == before[system] + workers
