"""The ERP sandbox's built-in rate limit, chaos modes and reset."""

from __future__ import annotations

import time

import orjson
import pytest

from tests.sandbox.erp.helpers import BP, NEW_PARTNER, csrf, erp, sap_error

pytestmark = pytest.mark.anyio


async def test_built_in_rate_limit_answers_503_with_retry_after(tmp_path):
    async with erp(tmp_path, rate=0.01, burst=3, retry_after=7) as client:
        statuses = [
            (await client.get(f"{BP}/A_BusinessPartner/$count")).status_code for _ in range(4)
        ]
        assert statuses[:3] == [200, 200, 200]
        limited = await client.get(f"{BP}/A_BusinessPartner/$count")
        assert limited.status_code == 503
        assert limited.headers["Retry-After"] == "7"
        sap_error(limited)


async def test_chaos_modes(tmp_path):
    async with erp(tmp_path) as client:
        url = f"{BP}/A_BusinessPartner('1000001')"

        await client.put("/_sandbox/chaos", json={"outage": True})
        down = await client.get(url)
        assert down.status_code == 503
        assert down.headers["connection"] == "close"

        await client.put("/_sandbox/chaos", json={"outage": False, "latency_ms": [150, 160]})
        started = time.monotonic()
        assert (await client.get(url)).status_code == 200
        assert time.monotonic() - started >= 0.15

        await client.put("/_sandbox/chaos", json={"latency_ms": [0, 0], "error_rate": 1.0})
        failed = await client.get(url)
        assert failed.status_code == 500
        sap_error(failed)

        await client.put("/_sandbox/chaos", json={"error_rate": 0.0, "throttle": True})
        throttled = await client.get(url)
        assert throttled.status_code == 503
        assert "Retry-After" in throttled.headers
        sap_error(throttled)

        await client.put("/_sandbox/chaos", json={"throttle": False, "malformed_rate": 1.0})
        broken = await client.get(url)
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(broken.content)

        await client.post("/_sandbox/reset")
        assert (await client.get(url)).status_code == 200


async def test_reset_restores_the_seeded_data(tmp_path):
    async with erp(tmp_path) as client:
        token = await csrf(client)
        created = await client.post(
            f"{BP}/A_BusinessPartner", json=NEW_PARTNER, headers={"X-CSRF-Token": token}
        )
        assert created.status_code == 201
        url = f"{BP}/A_BusinessPartner('1000002')"
        etag = (await client.get(url)).headers["ETag"]
        changed = await client.patch(
            url,
            json={"BusinessPartnerFullName": "Changed"},
            headers={"X-CSRF-Token": token, "If-Match": etag},
        )
        assert changed.status_code == 204
        assert (await client.get(f"{BP}/A_BusinessPartner/$count")).text == "21"

        assert (await client.post("/_sandbox/reset")).status_code == 200
        assert (await client.get(f"{BP}/A_BusinessPartner/$count")).text == "20"
        assert (await client.get(url)).headers["ETag"] == etag
        assert (await client.get(url)).json()["d"]["BusinessPartnerFullName"] != "Changed"
        # sessions are gone with the reset: the old token no longer works
        stale = await client.post(
            f"{BP}/A_BusinessPartner", json=NEW_PARTNER, headers={"X-CSRF-Token": token}
        )
        assert stale.status_code == 403
        again = await client.post(
            f"{BP}/A_BusinessPartner",
            json=NEW_PARTNER,
            headers={"X-CSRF-Token": await csrf(client)},
        )
        assert again.json()["d"]["BusinessPartner"] == "1000020"
