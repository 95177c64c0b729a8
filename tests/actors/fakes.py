"""Fake connectors and a tiny fake upstream HTTP app for the actor tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from types import TracebackType
from typing import Any

import anyio
from aiohttp import web

from actors.connector import Endpoint, HttpConnector
from actors.errors import NotFound, Rejected, SystemUnavailable, Throttled
from actors.messages import GetCustomers, Message
from canonical import System
from gateway.governance.systems import (
    BreakerPolicy,
    CachePolicy,
    RatePolicy,
    RetryPolicy,
    SystemPolicy,
)

Behaviour = Callable[[Message], Awaitable[object]]


def policy(**changes: Any) -> SystemPolicy:
    """A fast, permissive policy for tests; override what the test is about."""
    base = SystemPolicy(
        system=System.ERP,
        base_url="http://127.0.0.1:9",
        timeout=2.0,
        workers=4,
        mailbox=100,
        ask_timeout=5.0,
        health_interval=0,
        rate=RatePolicy(per_second=100_000, burst=100_000),
        breaker=BreakerPolicy(fail_max=3, reset_timeout=60, success_threshold=1),
        retry=RetryPolicy(attempts=1, base=0.001, cap=0.002),
        cache=CachePolicy(size=100, ttl=60),
    )
    return replace(base, **changes)


async def echo(message: Message) -> object:
    return ("answer", message)


class FakeConnector:
    """Counts calls per message and answers through ``behaviour`` (echo by default)."""

    def __init__(self, behaviour: Behaviour = echo, system: System = System.ERP) -> None:
        self.system = system
        self.behaviour = behaviour
        self.hits: Counter[Message] = Counter()
        self.calls: list[Message] = []
        self.cancelled = 0
        self.opened = False
        self.closed = False
        self.pings = 0

    @property
    def total(self) -> int:
        return len(self.calls)

    async def __aenter__(self) -> FakeConnector:
        self.opened = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.closed = True

    async def handle(self, message: Message) -> object:
        self.hits[message] += 1
        self.calls.append(message)
        try:
            return await self.behaviour(message)
        except anyio.get_cancelled_exc_class():
            self.cancelled += 1
            raise

    async def ping(self) -> float:
        self.pings += 1
        return 0.001


class Gate:
    """Holds calls until opened; counts how many are waiting."""

    def __init__(self) -> None:
        self.opened = anyio.Event()
        self.waiting = 0
        self.changed = anyio.Event()

    async def __call__(self, message: Message) -> object:
        self.waiting += 1
        self.changed.set()
        self.changed = anyio.Event()
        with anyio.fail_after(10):
            await self.opened.wait()
        return ("answer", message)

    async def until_waiting(self, n: int) -> None:
        with anyio.fail_after(5):
            while self.waiting < n:
                await self.changed.wait()


async def until(condition: Callable[[], bool], *, within: float = 5.0) -> None:
    """Wait for ``condition`` with a deadline (for clock-driven states like breaker reset)."""
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - the clock changes it; there is no event
            await anyio.sleep(0.002)


# ---------------------------------------------------------------- a real HTTP upstream


class Upstream:
    """A scriptable aiohttp app on a free loopback port that records every request.

    ``mode`` chooses the answer: "ok", "503", "429" (with Retry-After), "400", "404",
    "hang" (never answers until the client goes away).
    """

    def __init__(self) -> None:
        self.mode = "ok"
        self.retry_after = "0.2"
        self.times: list[float] = []
        self.disconnected = anyio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    @property
    def hits(self) -> int:
        return len(self.times)

    async def _customers(self, request: web.Request) -> web.Response:
        self.times.append(anyio.current_time())
        if self.mode == "503":
            return web.json_response({"error": "down"}, status=503)
        if self.mode == "429":
            return web.json_response(
                {"error": "slow down"}, status=429, headers={"Retry-After": self.retry_after}
            )
        if self.mode == "400":
            return web.json_response({"error": "bad"}, status=400)
        if self.mode == "404":
            return web.json_response({"error": "missing"}, status=404)
        if self.mode == "hang":
            try:
                await anyio.sleep_forever()
            finally:
                self.disconnected.set()
        ids = request.query.get("ids", "")
        return web.json_response({i: {"id": i} for i in ids.split(",") if i})

    async def __aenter__(self) -> Upstream:
        app = web.Application()
        app.router.add_get("/customers", self._customers)
        # handler_cancellation: a client that hangs up cancels the handler, so tests can
        # see that a timed-out call really went away
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


class CustomersConnector(HttpConnector):
    """A minimal real connector for ``Upstream``: GetCustomers -> GET /customers."""

    system = System.ERP

    def __init__(self, endpoint: Endpoint, *, fan_out: bool = False) -> None:
        super().__init__(endpoint)
        self.fan_out = fan_out  # one GET per id, in parallel, like Stripe's retrieves
        self.sent: list[float] = []  # when each HTTP call got its rate token
        self._inner_pace: Callable[[], Awaitable[None]] | None = None

    # the actor installs its rate limiter as ``pace``; note when each call got its token
    @property  # type: ignore[override]
    def pace(self) -> Callable[[], Awaitable[None]] | None:
        inner = self._inner_pace
        if inner is None:
            return None

        async def stamped() -> None:
            await inner()
            self.sent.append(anyio.current_time())

        return stamped

    @pace.setter
    def pace(self, value: Callable[[], Awaitable[None]] | None) -> None:
        self._inner_pace = value

    async def handle(self, message: Message) -> object:
        assert isinstance(message, GetCustomers)
        if self.fan_out:
            found: dict[str, object] = {}

            async def one(id_: str) -> None:
                response = await self.request("GET", "/customers", params={"ids": id_})
                found.update(self.decode(response))

            async with anyio.create_task_group() as tg:
                for id_ in message.ids:
                    tg.start_soon(one, id_)
            return found
        response = await self.request("GET", "/customers", params={"ids": ",".join(message.ids)})
        if response.status == 429:
            raise Throttled(
                self.system,
                "rate limited",
                status=429,
                retry_after=float(response.headers["Retry-After"]),
            )
        if response.status >= 500:
            raise SystemUnavailable(self.system, "server error", status=response.status)
        if response.status == 404:
            raise NotFound(self.system, "no such customer", status=404)
        if response.status >= 400:
            raise Rejected(self.system, "bad request", status=response.status)
        return self.decode(response)

    async def _ping(self) -> None:
        await self.request("GET", "/customers")


def http_connector(url: str, *, fan_out: bool = False) -> CustomersConnector:
    return CustomersConnector(Endpoint(base_url=url, timeout=5.0), fan_out=fan_out)
