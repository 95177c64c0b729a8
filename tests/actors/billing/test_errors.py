"""The billing connector's vendor failures mapped to the actor errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from actors.billing.errors import raise_for
from actors.connector import Response
from actors.errors import (
    Conflict,
    MalformedResponse,
    Rejected,
    SystemUnavailable,
    Throttled,
)
from actors.messages import (
    CreateSubscription,
    GetCustomers,
    GetOrders,
    ListCustomers,
)
from canonical import Subscription
from tests.actors.billing.helpers import DEMO, rig

pytestmark = pytest.mark.anyio


async def test_vendor_failures_map_to_the_actor_errors(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        read = GetCustomers((DEMO.companies[0].billing_id,))
        await r.chaos(throttle=True)
        with pytest.raises(Throttled) as throttled:
            await r.connector.handle(read)
        assert throttled.value.retry_after == 1.0
        assert throttled.value.status == 429
        await r.chaos(throttle=False, outage=True)
        with pytest.raises(SystemUnavailable):
            await r.connector.handle(ListCustomers())
        await r.chaos(outage=False, error_rate=1.0)
        with pytest.raises(SystemUnavailable) as failed:
            await r.connector.handle(ListCustomers())
        assert failed.value.retryable
        await r.chaos(error_rate=0.0, malformed_rate=1.0)
        with pytest.raises(MalformedResponse):
            await r.connector.handle(ListCustomers())
        await r.chaos(malformed_rate=0.0)
        assert await r.connector.ping() > 0

        # the same key while the first request is still being served: retry soon
        await r.chaos(latency_ms=[300, 300])
        message = CreateSubscription(
            "op-12:billing",
            DEMO.companies[9].billing_id,
            (("price_plus_monthly", 1),),
            first_delivery=True,  # no look-up first: both reach Stripe at once
        )
        outcomes: list[object] = []

        async def send() -> None:
            try:
                outcomes.append(await r.connector.handle(message))
            except Throttled as exc:
                outcomes.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(send)
            # the second goes once the sandbox holds the first (it takes the key on arrival)
            with anyio.fail_after(5):
                while "POST /v1/subscriptions" not in await r.calls():  # noqa: ASYNC110 - polls the server
                    await anyio.sleep(0.01)
            tg.start_soon(send)
        await r.chaos(latency_ms=[0, 0])
        busy = [o for o in outcomes if isinstance(o, Throttled)]
        assert len(busy) == 1
        assert busy[0].status == 409
        assert busy[0].retry_after is not None
        assert sum(isinstance(o, Subscription) for o in outcomes) == 1

        with pytest.raises(TypeError, match="GetOrders"):
            await r.connector.handle(GetOrders(("x",)))


async def test_a_wrong_key_is_unavailable_and_not_retryable(tmp_path: Path) -> None:
    async with rig(tmp_path, key="sk_test_wrong") as r:
        with pytest.raises(SystemUnavailable) as refused:
            await r.connector.handle(ListCustomers())
        assert refused.value.status == 401
        assert refused.value.retryable is False


def _answer(status: int, error: dict[str, Any], **headers: str) -> Response:
    return Response(status, headers, orjson.dumps({"error": error}))


@pytest.mark.parametrize(
    ("response", "kind", "retryable"),
    [
        (
            _answer(402, {"type": "card_error", "code": "card_declined", "message": "Declined"}),
            Rejected,
            False,
        ),
        (
            _answer(500, {"type": "api_error", "message": "x"}, **{"Stripe-Should-Retry": "false"}),
            Rejected,
            False,
        ),
        (_answer(500, {"type": "api_error", "message": "x"}), SystemUnavailable, True),
        (_answer(400, {"type": "idempotency_error", "message": "x"}), Conflict, False),
        (Response(502, {}, b"<html>bad gateway</html>"), SystemUnavailable, True),
        (Response(400, {}, b"not json"), MalformedResponse, True),
    ],
)
def test_error_answers_map_by_status_type_and_should_retry(
    response: Response, kind: type[Exception], retryable: bool
) -> None:
    with pytest.raises(kind) as raised:
        raise_for(response, "POST /v1/invoices/in_1/pay", max_retry_after=60.0)
    assert getattr(raised.value, "retryable", None) is retryable
