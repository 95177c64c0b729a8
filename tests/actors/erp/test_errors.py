"""The ERP connector's vendor errors, throttling, bad credentials and timeouts."""

from __future__ import annotations

import httpx
import pytest

from actors.connector import Endpoint
from actors.erp import ErpConnector
from actors.errors import (
    MalformedResponse,
    Rejected,
    SystemTimeout,
    SystemUnavailable,
    Throttled,
)
from actors.messages import (
    GetCustomers,
    GetSubscriptions,
)
from sandbox.app import SandboxConfig
from sandbox.erp import create_app
from tests.actors.erp.helpers import CREDENTIALS, environment
from tests.servers import serve

pytestmark = pytest.mark.anyio


async def test_error_mapping(tmp_path):
    async with environment(tmp_path) as env:
        read = GetCustomers(("1000001",))

        await env.chaos(throttle=True)
        with pytest.raises(Throttled) as throttled:
            await env.erp.handle(read)
        assert throttled.value.retry_after == 1.0

        await env.chaos(throttle=False, outage=True)
        with pytest.raises(SystemUnavailable):
            await env.erp.handle(read)

        await env.chaos(outage=False, error_rate=1.0)
        with pytest.raises(SystemUnavailable) as failed:
            await env.erp.handle(read)
        assert failed.value.status == 500

        await env.chaos(error_rate=0.0, malformed_rate=1.0)
        with pytest.raises(MalformedResponse):
            await env.erp.handle(read)

        await env.chaos(malformed_rate=0.0)
        assert await env.erp.handle(read)
        with pytest.raises(TypeError, match="GetSubscriptions"):
            await env.erp.handle(GetSubscriptions(("cus_1",)))


async def test_built_in_throttle_and_bad_credentials(tmp_path):
    async with environment(tmp_path, rate=0.01, burst=2, retry_after=3) as env:
        await env.erp.handle(GetCustomers(("1000001",)))
        await env.erp.handle(GetCustomers(("1000001",)))
        with pytest.raises(Throttled) as throttled:
            await env.erp.handle(GetCustomers(("1000001",)))
        assert throttled.value.retry_after == 3.0

    async with environment(tmp_path, {"username": "sandbox", "password": "wrong"}) as env:
        with pytest.raises(Rejected) as rejected:
            await env.erp.handle(GetCustomers(("1000001",)))
        assert rejected.value.status == 401


async def test_slow_answers_become_system_timeout(tmp_path):
    config = SandboxConfig.for_system(
        "erp", data_dir=tmp_path, gateway_url=None, customers=20, fresh=True
    )
    async with (
        serve(create_app(config)) as url,
        httpx.AsyncClient(base_url=url) as http,
        ErpConnector(Endpoint(url, CREDENTIALS, timeout=0.2)) as erp,
    ):
        await http.put("/_sandbox/chaos", json={"latency_ms": [1000, 1000]})
        with pytest.raises(SystemTimeout):
            await erp.handle(GetCustomers(("1000001",)))
