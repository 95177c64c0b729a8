"""The CRM connector's vendor answers mapped to named errors, throttling and timeouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.crm import THROTTLE_PAUSE
from actors.errors import (
    MalformedResponse,
    Rejected,
    SystemTimeout,
    SystemUnavailable,
    Throttled,
)
from actors.messages import (
    FindCustomers,
    GetCustomers,
    GetOpportunity,
    GetOrders,
)
from tests.actors.crm.helpers import DEMO, running

pytestmark = pytest.mark.anyio


async def test_vendor_answers_map_to_named_errors(tmp_path: Path) -> None:
    ids = (DEMO.companies[0].crm_id,)
    async with running(tmp_path) as (crm, root):
        assert await crm.ping() > 0
        await root.put("/_sandbox/chaos", json={"throttle": True})
        with pytest.raises(Throttled) as throttled:
            await crm.handle(GetCustomers(ids))
        assert throttled.value.retry_after == THROTTLE_PAUSE
        assert throttled.value.status == 403
        await root.put("/_sandbox/chaos", json={"throttle": False, "outage": True})
        with pytest.raises(SystemUnavailable) as outage:
            await crm.handle(GetOpportunity(DEMO.companies[0].opportunities[0].id))
        assert outage.value.status == 503
        await root.put("/_sandbox/chaos", json={"outage": False, "error_rate": 1.0})
        with pytest.raises(SystemUnavailable) as failed:
            await crm.handle(GetCustomers(ids))
        assert failed.value.status == 500
        await root.put("/_sandbox/chaos", json={"error_rate": 0.0, "malformed_rate": 1.0})
        with pytest.raises(MalformedResponse):
            await crm.handle(GetCustomers(ids))
        with pytest.raises(MalformedResponse):
            await crm.handle(GetOpportunity(DEMO.companies[0].opportunities[0].id))
        await root.put("/_sandbox/chaos", json={"malformed_rate": 0.0})
        with pytest.raises(Rejected) as malformed:
            await crm._query("SELECT Id FROM Account WHERE Name = 'unbalanced")
        assert malformed.value.details["errorCode"] == "MALFORMED_QUERY"
        assert not malformed.value.retryable
        with pytest.raises(TypeError, match="GetOrders"):
            await crm.handle(GetOrders(("1000000",)))


async def test_daily_limit_is_throttled_and_a_bad_token_is_not_retryable(tmp_path: Path) -> None:
    async with running(tmp_path, app_options={"daily_limit": 1}) as (crm, _):
        await crm.ping()
        with pytest.raises(Throttled):
            await crm.ping()
    async with running(tmp_path / "other", token="00Dwrong") as (crm, _):
        with pytest.raises(SystemUnavailable) as caught:
            await crm.handle(FindCustomers("a"))
        assert caught.value.status == 401
        assert caught.value.retryable is False
        assert "access_token" in str(caught.value)


async def test_latency_past_the_timeout_is_a_system_timeout(tmp_path: Path) -> None:
    async with running(tmp_path, call_timeout=0.2) as (crm, root):
        await root.put("/_sandbox/chaos", json={"latency_ms": [600, 700]})
        with pytest.raises(SystemTimeout):
            await crm.ping()
        await root.put("/_sandbox/chaos", json={"latency_ms": [0, 0]})
