"""A system's rate limiter at this replica's share of the policy rate (actors._rate)."""

from __future__ import annotations

import anyio
import pytest

from actors._rate import SharedRate
from actors.policy import RatePolicy

pytestmark = pytest.mark.anyio

RATE = RatePolicy(per_second=100.0, burst=10)


async def test_the_first_bucket_starts_full_as_before() -> None:
    rate = SharedRate(RATE)
    for _ in range(10):
        assert rate.has_capacity()
        await rate.acquire()
    assert not rate.has_capacity()


async def test_a_new_share_starts_drained_so_it_never_bursts() -> None:
    rate = SharedRate(RATE)
    rate.set_share(0.5)
    assert rate.per_second == 50.0
    assert not rate.has_capacity()  # no burst on top of what the old bucket spent
    with anyio.fail_after(1):
        await rate.acquire()  # the first token of a drained bucket comes after 1/rate


async def test_at_share_zero_callers_wait_for_a_share() -> None:
    rate = SharedRate(RATE, share=0.0)
    got = anyio.Event()

    async def caller() -> None:
        await rate.acquire()
        got.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(caller)
        await anyio.wait_all_tasks_blocked()
        assert not got.is_set()
        assert not rate.has_capacity()
        rate.set_share(1.0)
        with anyio.fail_after(1):
            await got.wait()


async def test_a_caller_waiting_on_a_replaced_bucket_takes_from_the_new_one() -> None:
    rate = SharedRate(RatePolicy(per_second=1.0, burst=1))
    await rate.acquire()  # the one token: the next waits about a second
    done = anyio.Event()

    async def caller() -> None:
        await rate.acquire()
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(caller)
        await anyio.wait_all_tasks_blocked()
        rate.set_share(0.0)  # the caller's old bucket will free a token: it must not count
        with anyio.move_on_after(1.5):
            await done.wait()
        assert not done.is_set()
        rate.set_share(1.0)
        with anyio.fail_after(3):
            await done.wait()


def test_a_share_outside_0_to_1_is_refused() -> None:
    with pytest.raises(ValueError, match="share"):
        SharedRate(RATE).set_share(1.5)
