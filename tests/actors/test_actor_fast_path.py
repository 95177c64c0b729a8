"""The actor's fast path: an ask on an idle actor runs in the asker's own task."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from actors import Actor, Envelope
from actors.errors import ActorStopped, SystemTimeout
from actors.messages import GetCustomers, Priority

pytestmark = pytest.mark.anyio


def msg(n: int) -> GetCustomers:
    return GetCustomers((str(n),))


class TaskRecorder:
    """Records, per message, which task handled it; can hold message "0" until released."""

    def __init__(self) -> None:
        self.tasks: dict[str, asyncio.Task[object] | None] = {}
        self.seen: list[str] = []
        self.hold = anyio.Event()
        self.holding = anyio.Event()

    async def __call__(self, envelope: Envelope) -> object:
        message = envelope.message
        assert isinstance(message, GetCustomers)
        key = message.ids[0]
        self.seen.append(key)
        self.tasks[key] = asyncio.current_task()
        if key == "0":
            self.holding.set()
            with anyio.fail_after(5):
                await self.hold.wait()
        return key


async def test_an_ask_on_an_idle_actor_runs_in_the_askers_task() -> None:
    handler = TaskRecorder()
    async with Actor("erp", handler, workers=2) as actor:
        assert await actor.ask(msg(1), priority=Priority.BATCH) == "1"
        assert handler.tasks["1"] is asyncio.current_task()
        assert actor.in_flight == 0
        assert len(actor.mailbox) == 0


async def test_an_ask_does_not_overtake_a_queued_message() -> None:
    handler = TaskRecorder()
    async with Actor("erp", handler, workers=2) as actor:
        # queued, and the worker woken for it has not run yet: the ask must queue behind it
        actor.tell(msg(1), priority=Priority.INTERACTIVE)
        assert len(actor.mailbox) == 1
        assert await actor.ask(msg(2), priority=Priority.INTERACTIVE) == "2"
        assert handler.seen == ["1", "2"]
        assert handler.tasks["2"] is not asyncio.current_task()


async def test_queued_messages_keep_their_priority_behind_a_fast_path_call() -> None:
    handler = TaskRecorder()
    answers: list[object] = []

    async def ask(n: int, priority: Priority) -> None:
        answers.append(await actor.ask(msg(n), priority=priority))

    async with Actor("erp", handler, workers=1) as actor, anyio.create_task_group() as tg:
        tg.start_soon(ask, 0, Priority.BATCH)
        with anyio.fail_after(5):
            await handler.holding.wait()
        assert actor.in_flight == 1  # the one worker's slot is lent to the first ask
        tg.start_soon(ask, 1, Priority.BATCH)
        tg.start_soon(ask, 2, Priority.SYNC)
        tg.start_soon(ask, 3, Priority.INTERACTIVE)
        await anyio.wait_all_tasks_blocked()
        assert len(actor.mailbox) == 3
        handler.hold.set()
    assert handler.seen == ["0", "3", "2", "1"]
    assert sorted(answers, key=str) == ["0", "1", "2", "3"]


async def test_a_fast_path_ask_past_its_deadline_is_dropped_unsent() -> None:
    handler = TaskRecorder()
    async with Actor("erp", handler, workers=1) as actor:
        with pytest.raises(SystemTimeout, match="dropped unsent"):
            await actor.ask(
                msg(1), priority=Priority.INTERACTIVE, deadline=anyio.current_time() - 1
            )
    assert handler.seen == []
    assert actor.stats.expired == 1


async def test_stop_during_a_fast_path_call_answers_actor_stopped_and_leaves_no_task() -> None:
    baseline = len(asyncio.all_tasks())
    started = anyio.Event()
    cancelled = anyio.Event()

    async def busy(envelope: Envelope) -> object:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()
        raise AssertionError("unreachable")

    outcome: list[BaseException | object] = []
    asker: list[asyncio.Task[object] | None] = []

    async def ask() -> None:
        asker.append(asyncio.current_task())
        try:
            outcome.append(await actor.ask(msg(1), priority=Priority.INTERACTIVE, timeout=30))
        except ActorStopped as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tg:
        actor = Actor("erp", busy, workers=2, stop_grace=0.01)
        await tg.start(actor.run)
        tg.start_soon(ask)
        with anyio.fail_after(5):
            await started.wait()
        assert actor.in_flight == 1
        assert len(actor.mailbox) == 0  # it never went through the mailbox
        actor.stop()
        with anyio.fail_after(5):
            await actor.wait_stopped()
        # stop() returned only once the fast-path call had unwound
        assert cancelled.is_set()
        assert actor.in_flight == 0
    assert len(outcome) == 1
    assert isinstance(outcome[0], ActorStopped)
    assert str(outcome[0]) == "erp: erp actor stopped while handling GetCustomers"
    assert len(asyncio.all_tasks()) == baseline


async def test_concurrent_fast_path_callers_stay_within_the_bulkhead() -> None:
    workers = 3
    running = 0
    most = 0
    gate = anyio.Event()
    tasks: set[asyncio.Task[object] | None] = set()

    async def handler(envelope: Envelope) -> object:
        nonlocal running, most
        running += 1
        most = max(most, running)
        tasks.add(asyncio.current_task())
        try:
            with anyio.fail_after(5):
                await gate.wait()
        finally:
            running -= 1
        return "ok"

    answers: list[object] = []
    askers: set[asyncio.Task[object] | None] = set()

    async def ask(n: int) -> None:
        askers.add(asyncio.current_task())
        answers.append(await actor.ask(msg(n), priority=Priority.INTERACTIVE))

    async with Actor("erp", handler, workers=workers) as actor, anyio.create_task_group() as tg:
        for n in range(10):
            tg.start_soon(ask, n)
        await anyio.wait_all_tasks_blocked()
        assert running == workers
        assert actor.in_flight == workers
        assert len(actor.mailbox) == 10 - workers
        gate.set()
    assert answers == ["ok"] * 10
    assert most == workers
    # the first callers ran their own calls; the queued rest went to the workers
    assert len(tasks & askers) == workers
    assert len(tasks - askers) >= 1


async def test_a_handler_bug_on_the_fast_path_restarts_the_borrowed_worker() -> None:
    seen_in: list[asyncio.Task[object] | None] = []

    async def handler(envelope: Envelope) -> object:
        seen_in.append(asyncio.current_task())
        message = envelope.message
        assert isinstance(message, GetCustomers)
        if message.ids == ("bug",):
            raise KeyError("a connector bug")
        return "ok"

    async with Actor("erp", handler, workers=1, restart_backoff=(0.001, 0.01)) as actor:
        with pytest.raises(KeyError):
            await actor.ask(GetCustomers(("bug",)), priority=Priority.INTERACTIVE)
        assert seen_in == [asyncio.current_task()]
        assert await actor.ask(msg(1), priority=Priority.INTERACTIVE) == "ok"
    assert actor.stats.restarts == 1
