"""The generic actor: priority order, shedding, deadlines, supervision, clean stop."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from actors import Actor, Envelope
from actors._mailbox import Mailbox
from actors.errors import ActorStopped, NotFound, SystemTimeout, Throttled
from actors.messages import GetCustomers, Priority

pytestmark = pytest.mark.anyio


def msg(n: int) -> GetCustomers:
    return GetCustomers((str(n),))


class Recorder:
    """A handler that records the order it sees messages in; can hold the first one."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.hold = anyio.Event()
        self.holding = anyio.Event()
        self.block_first = False

    async def __call__(self, envelope: Envelope) -> object:
        message = envelope.message
        assert isinstance(message, GetCustomers)
        if self.block_first and not self.seen:
            self.seen.append(message.ids[0])
            self.holding.set()
            with anyio.fail_after(5):
                await self.hold.wait()
            return message.ids[0]
        self.seen.append(message.ids[0])
        return message.ids[0]


def test_mailbox_orders_by_priority_then_fifo() -> None:
    box: Mailbox[str] = Mailbox(10)
    for item, priority in [
        ("b1", Priority.BATCH),
        ("s1", Priority.SYNC),
        ("i1", Priority.INTERACTIVE),
        ("b2", Priority.BATCH),
        ("t1", Priority.TRANSACTIONAL),
        ("i2", Priority.INTERACTIVE),
    ]:
        assert box.put(item, priority) is None
    order = []
    while (item := box.get_nowait()) is not None:
        order.append(item)
    assert order == ["i1", "i2", "t1", "s1", "b1", "b2"]


def test_full_mailbox_sheds_newest_of_least_urgent_class() -> None:
    box: Mailbox[str] = Mailbox(3)
    box.put("b1", Priority.BATCH)
    box.put("b2", Priority.BATCH)
    box.put("s1", Priority.SYNC)
    assert box.put("i1", Priority.INTERACTIVE) == "b2"
    assert box.put("b3", Priority.BATCH) == "b3"  # nothing less urgent queued: newcomer goes
    assert box.put("t1", Priority.TRANSACTIONAL) == "b1"
    assert box.put("s2", Priority.SYNC) == "s2"  # only SYNC or better left: equal loses
    assert box.depths() == {
        Priority.INTERACTIVE: 1,
        Priority.TRANSACTIONAL: 1,
        Priority.SYNC: 1,
        Priority.BATCH: 0,
    }


async def test_saturated_actor_serves_interactive_before_batch() -> None:
    handler = Recorder()
    handler.block_first = True
    async with (
        Actor("erp", handler, workers=1, capacity=100) as actor,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(lambda: actor.ask(msg(0), priority=Priority.BATCH))
        with anyio.fail_after(5):
            await handler.holding.wait()
        # queue in the worst order: least urgent first
        for n, priority in [
            (1, Priority.BATCH),
            (2, Priority.SYNC),
            (3, Priority.BATCH),
            (4, Priority.TRANSACTIONAL),
            (5, Priority.INTERACTIVE),
            (6, Priority.SYNC),
            (7, Priority.INTERACTIVE),
        ]:
            actor.tell(msg(n), priority=priority)
        handler.hold.set()
        await anyio.wait_all_tasks_blocked()  # the worker has emptied the mailbox
    assert handler.seen == ["0", "5", "7", "4", "2", "6", "1", "3"]


async def test_full_mailbox_answers_throttled_to_the_shed_ask() -> None:
    handler = Recorder()
    handler.block_first = True
    results: dict[int, object] = {}

    async def ask(n: int, priority: Priority) -> None:
        try:
            results[n] = await actor.ask(msg(n), priority=priority)
        except Throttled as exc:
            results[n] = exc

    async with (
        Actor("erp", handler, workers=1, capacity=2) as actor,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(ask, 0, Priority.INTERACTIVE)
        with anyio.fail_after(5):
            await handler.holding.wait()
        tg.start_soon(ask, 1, Priority.BATCH)
        tg.start_soon(ask, 2, Priority.SYNC)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(ask, 3, Priority.INTERACTIVE)  # full: BATCH #1 is shed for it
        await anyio.wait_all_tasks_blocked()
        assert isinstance(results[1], Throttled)
        with pytest.raises(Throttled, match="mailbox full"):
            await actor.ask(msg(4), priority=Priority.BATCH)  # newcomer is least urgent
        handler.hold.set()
    shed = results[1]
    assert isinstance(shed, Throttled)
    assert shed.code == "THROTTLED"
    assert "GetCustomers (BATCH) was shed" in str(shed)
    assert [results[0], results[2], results[3]] == ["0", "2", "3"]
    assert actor.stats.shed[Priority.BATCH] == 2


async def test_expired_message_is_dropped_before_the_handler() -> None:
    handler = Recorder()
    handler.block_first = True
    async with (
        Actor("erp", handler, workers=1, capacity=10) as actor,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(lambda: actor.ask(msg(0), priority=Priority.INTERACTIVE))
        with anyio.fail_after(5):
            await handler.holding.wait()
        # a tell past its deadline by the time the worker is free
        actor.tell(msg(1), priority=Priority.INTERACTIVE, deadline=anyio.current_time() - 1)
        with pytest.raises(SystemTimeout) as caught:
            await actor.ask(msg(2), priority=Priority.INTERACTIVE, timeout=0.01)
        assert caught.value.code == "SYSTEM_TIMEOUT"
        handler.hold.set()
        await actor.ask(msg(3), priority=Priority.INTERACTIVE)
    assert handler.seen == ["0", "3"]
    assert actor.stats.expired == 2  # the tell, and the ask whose deadline passed queued


async def test_deadline_cancels_a_running_handler() -> None:
    cancelled = anyio.Event()

    async def slow(envelope: Envelope) -> object:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    async with Actor("erp", slow, workers=1) as actor:
        with pytest.raises(SystemTimeout):
            await actor.ask(msg(1), priority=Priority.INTERACTIVE, timeout=0.02)
        with anyio.fail_after(5):
            await cancelled.wait()


async def test_handler_error_fails_only_its_ask() -> None:
    async def handler(envelope: Envelope) -> object:
        message = envelope.message
        assert isinstance(message, GetCustomers)
        if message.ids == ("bad",):
            raise NotFound("erp", "no customer bad")
        return "ok"

    async with Actor("erp", handler, workers=1) as actor:
        with pytest.raises(NotFound):
            await actor.ask(GetCustomers(("bad",)), priority=Priority.INTERACTIVE)
        assert await actor.ask(msg(1), priority=Priority.INTERACTIVE) == "ok"
    assert actor.stats.restarts == 0


async def test_crashed_worker_is_restarted_with_backoff() -> None:
    async def handler(envelope: Envelope) -> object:
        message = envelope.message
        assert isinstance(message, GetCustomers)
        if message.ids == ("bug",):
            raise KeyError("a connector bug")
        return "ok"

    async with Actor("erp", handler, workers=1, restart_backoff=(0.001, 0.01)) as actor:
        for _ in range(3):
            with pytest.raises(KeyError):
                await actor.ask(GetCustomers(("bug",)), priority=Priority.INTERACTIVE)
        # the pool is whole again: the one worker was restarted each time
        assert await actor.ask(msg(1), priority=Priority.INTERACTIVE) == "ok"
    assert actor.stats.restarts == 3


async def test_stop_under_load_answers_every_ask_and_leaves_no_task() -> None:
    baseline = len(asyncio.all_tasks())
    started = 0
    all_started = anyio.Event()

    async def busy(envelope: Envelope) -> object:
        nonlocal started
        started += 1
        if started == 4:
            all_started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    outcomes: list[BaseException | object] = []

    async def ask(n: int) -> None:
        try:
            outcomes.append(await actor.ask(msg(n), priority=Priority(n % 4)))
        except ActorStopped as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as tg:
        actor = Actor("erp", busy, workers=4, capacity=100)
        await tg.start(actor.run)
        for n in range(40):
            tg.start_soon(ask, n)
        with anyio.fail_after(5):
            await all_started.wait()
        await anyio.wait_all_tasks_blocked()
        actor.stop()
    assert len(outcomes) == 40
    assert all(isinstance(o, ActorStopped) for o in outcomes)
    messages = {str(o) for o in outcomes}
    assert "erp: erp actor stopped before handling GetCustomers" in messages
    assert "erp: erp actor stopped while handling GetCustomers" in messages
    assert len(asyncio.all_tasks()) == baseline
    with pytest.raises(ActorStopped, match="stopped before handling GetCustomers"):
        await actor.ask(msg(99), priority=Priority.INTERACTIVE)


async def test_ask_before_start_says_how_to_start() -> None:
    actor = Actor("erp", Recorder())
    with pytest.raises(RuntimeError, match="not running"):
        await actor.ask(msg(1), priority=Priority.INTERACTIVE)


async def test_actor_cannot_run_twice() -> None:
    actor = Actor("erp", Recorder())
    async with actor:
        pass
    with pytest.raises(RuntimeError, match="Cannot start the erp actor again"):
        await actor.run()
