"""The billing sandbox's idempotency keys: replay, mismatch, concurrency and restart."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from tests.sandbox.billing.helpers import _error, running

pytestmark = pytest.mark.anyio


async def _received(bare: httpx.AsyncClient, route: str) -> int:
    stats = (await bare.get("/_sandbox/stats")).json()
    count: int = stats["by_route"].get(route, 0)
    return count


async def test_idempotency_replay_mismatch_concurrency_and_restart(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, bare):
        body = {"name": "Once Only GmbH", "metadata[erp_bp]": "1999555"}
        first = await api.post("/v1/customers", data=body, headers={"Idempotency-Key": "k-1"})
        second = await api.post("/v1/customers", data=body, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == second.status_code == 200
        assert second.json() == first.json()
        assert second.headers["Idempotent-Replayed"] == "true"
        assert second.headers["Original-Request"] == first.headers["Request-Id"]
        assert "Idempotent-Replayed" not in first.headers
        other = await api.post(
            "/v1/customers", data={"name": "Someone Else"}, headers={"Idempotency-Key": "k-1"}
        )
        assert other.status_code == 400
        assert _error(other)["type"] == "idempotency_error"
        found = await api.get(
            "/v1/customers/search", params={"query": "metadata['erp_bp']:'1999555'"}
        )
        assert len(found.json()["data"]) == 1

        # an error answer from the endpoint is stored and replayed too
        refused = {"customer": "cus_missing", "items[0][price]": "price_core_monthly"}
        bad1 = await api.post("/v1/subscriptions", data=refused, headers={"Idempotency-Key": "k-2"})
        bad2 = await api.post("/v1/subscriptions", data=refused, headers={"Idempotency-Key": "k-2"})
        assert bad1.status_code == bad2.status_code == 400
        assert bad2.headers["Idempotent-Replayed"] == "true"

        # the same key while the first request is still running: 409
        await bare.put("/_sandbox/chaos", json={"latency_ms": [400, 400]})
        answers: list[httpx.Response] = []

        async def send() -> None:
            answers.append(
                await api.post(
                    "/v1/customers", data={"name": "Slow"}, headers={"Idempotency-Key": "k-3"}
                )
            )

        before = await _received(bare, "POST /v1/customers")
        async with anyio.create_task_group() as tg:
            tg.start_soon(send)
            # the second goes once the sandbox holds the first (it takes the key on arrival)
            with anyio.fail_after(5):
                while await _received(bare, "POST /v1/customers") == before:  # noqa: ASYNC110 - polls the server: no event to wait on
                    await anyio.sleep(0.01)
            tg.start_soon(send)
        await bare.put("/_sandbox/chaos", json={"latency_ms": [0, 0]})
        assert sorted(a.status_code for a in answers) == [200, 409]
        busy = next(a for a in answers if a.status_code == 409)
        assert _error(busy)["code"] == "idempotency_key_in_use"
        assert busy.headers["Stripe-Should-Retry"] == "true"
        created_id = next(a for a in answers if a.status_code == 200).json()["id"]

    # a restart keeps the stored answers
    async with running(tmp_path) as (api, _):
        replay = await api.post(
            "/v1/customers", data={"name": "Slow"}, headers={"Idempotency-Key": "k-3"}
        )
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json()["id"] == created_id
