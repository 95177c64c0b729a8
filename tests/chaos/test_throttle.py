"""Throttling against the real sandbox systems: the vendor's own back-off signal pauses the
actor, and the policy's own rate holds on the wire.
"""

from __future__ import annotations

import bisect

import pytest

from actors.billing import errors as billing
from actors.crm import errors as crm
from actors.errors import Throttled
from actors.messages import GetCustomers, Priority
from canonical import System
from gateway.governance.systems import RatePolicy, RetryPolicy
from tests.chaos.world import World, ask_all

pytestmark = pytest.mark.anyio

URGENT = Priority.INTERACTIVE

#: seconds a call's arrival stamp may lag its departure from the rate limiter
JITTER = 0.05

#: a vendor path to call directly, and how that vendor says "slow down"
VENDOR_SIGNAL = {
    System.ERP: ("/sap/opu/odata/sap/API_BUSINESS_PARTNER/A_BusinessPartner", 503, "Retry-After"),
    System.BILLING: ("/v1/customers", 429, "Stripe-Should-Retry"),
    System.CRM: ("/services/data/v60.0/query", 403, "REQUEST_LIMIT_EXCEEDED"),
    System.SUPPORT: ("/api/v2/organizations", 429, "Retry-After"),
}


@pytest.mark.parametrize("system", list(System), ids=str)
async def test_a_throttle_storm_is_met_with_back_off_not_hammering(
    world: World, system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Salesforce names no delay, so the CRM connector pauses THROTTLE_PAUSE (5 s); the
    # test shortens it to the others' 1 s to stay quick (the mechanism is the same)
    monkeypatch.setattr(crm, "THROTTLE_PAUSE", 1.0)
    # the pause the actor takes: the vendor's Retry-After (SAP and Zendesk say 1 s here),
    # else the connector's own pause where the vendor names none (Stripe, Salesforce)
    pause = {
        System.ERP: 1.0,
        System.BILLING: billing.THROTTLE_PAUSE,
        System.CRM: crm.THROTTLE_PAUSE,
        System.SUPPORT: 1.0,
    }[system]
    workers = 4
    sandbox = world[system]
    await sandbox.chaos(throttle=True)
    path, status, signal = VENDOR_SIGNAL[system]
    answer = await sandbox.http.get(sandbox.url + path)
    assert answer.status_code == status
    assert signal in answer.headers or signal in answer.text

    retry = RetryPolicy(attempts=3, base=0.01, cap=0.02)
    async with world.systems(system, retry=retry, workers=workers) as systems:
        actor = systems[system]
        reads = world.reads(system, 16)
        before = await sandbox.requests()

        # a caller whose deadline is shorter than the pause gets THROTTLED after one call
        # (no retry: the vendor said not before the pause ends)
        with pytest.raises(Throttled) as first:
            await actor.ask(reads[0], priority=URGENT, timeout=0.5)
        assert first.value.code == "THROTTLED"
        assert first.value.retry_after == pytest.approx(pause)
        first_at = (await sandbox.timestamps())[-1]
        assert await sandbox.requests() == before + 1

        # the storm: everyone asking inside the pause is answered THROTTLED without a call
        results = await ask_all(actor, reads, timeout=0.5)
        assert all(isinstance(r, Throttled) for r in results), results
        assert all(r.retry_after and r.retry_after > 0 for r in results)
        assert await sandbox.requests() == before + 1
        assert actor.breaker_state == "closed"  # being throttled is not a failure

        # patient callers, still throttled: they wait out the pause, then at most one call
        # per worker tries again (and is throttled again, pausing everyone past their
        # deadlines): no call inside a pause, and no more than the bulkhead after it
        results = await ask_all(actor, reads, timeout=pause + 0.5)
        assert all(isinstance(r, Throttled) for r in results), results
        stamps = (await sandbox.timestamps())[before:]
        assert 2 <= len(stamps) <= 1 + workers, stamps
        assert all(later - first_at >= pause for later in stamps[1:])
        assert actor.breaker_state == "closed"

        # the vendor relents; a caller with time to spare is held until the pause is over
        await sandbox.chaos(throttle=False)
        throttled = len(stamps)
        assert isinstance(await actor.ask(reads[1], priority=URGENT, timeout=pause + 2.0), dict)
        recovered = (await sandbox.timestamps())[before:]
        assert len(recovered) == throttled + 1
        assert recovered[-1] - stamps[-1] >= pause


@pytest.mark.parametrize("system", list(System), ids=str)
async def test_a_burst_of_reads_never_exceeds_the_policy_rate(world: World, system: System) -> None:
    # more calls than one second allows, so the 1 s windows below can be exceeded; a low
    # rate leaves a call's spacing (100 ms) for arrival jitter on a loaded machine
    rate = RatePolicy(per_second=10.0, burst=3)
    calls = 20
    sandbox = world[system]
    async with world.systems(system, rate=rate, workers=16) as systems:
        before = await sandbox.requests()
        results = await ask_all(systems[system], world.reads(system, calls), timeout=10.0)
        assert all(isinstance(r, dict) for r in results), results
        stamps = (await sandbox.timestamps())[before:]
    assert len(stamps) == calls  # one vendor call per read
    assert_within_rate(stamps, rate)
    # the limiter spread them out: the burst at once, the rest at the policy rate
    assert stamps[-1] - stamps[0] >= 0.9 * (calls - rate.burst) / rate.per_second


@pytest.mark.parametrize("system", list(System), ids=str)
async def test_a_burst_of_batched_reads_never_exceeds_the_policy_rate(
    world: World, system: System
) -> None:
    """Reads of three customers each: the rate holds for vendor calls, however a connector
    turns one message into calls (Stripe has no batch retrieve: one call per customer).
    """
    rate = RatePolicy(per_second=10.0, burst=3)
    asks, per_read = 8, 3
    sandbox = world[system]
    ids = world.ids(system) + world.missing_ids(system, asks * per_read)
    reads = [GetCustomers(ids[n * per_read : (n + 1) * per_read]) for n in range(asks)]
    async with world.systems(system, rate=rate, workers=16) as systems:
        before = await sandbox.requests()
        results = await ask_all(systems[system], reads, timeout=10.0)
        assert all(isinstance(r, dict) for r in results), results
        stamps = (await sandbox.timestamps())[before:]
    assert len(stamps) >= asks
    assert_within_rate(stamps, rate)


def assert_within_rate(stamps: list[float], rate: RatePolicy) -> None:
    """Every sliding 1 s window starting at a call holds at most burst + rate calls; and
    at every scale, calls i..j span at least what the leaky bucket allows, give or take
    the loopback's jitter (the sandbox stamps a call when its server task runs, on the same
    event loop as the callers).
    """
    stamps = sorted(stamps)
    allowed = rate.burst + rate.per_second
    for index, start in enumerate(stamps):
        in_window = bisect.bisect_left(stamps, start + 1.0) - index
        assert in_window <= allowed, f"{in_window} calls in the 1 s from {start:.3f}"
        for later in range(index + 1, len(stamps)):
            calls = later - index + 1
            budget = rate.burst + rate.per_second * (stamps[later] - start + JITTER) + 1
            assert calls <= budget, f"{calls} calls in {stamps[later] - start:.3f} s"
