"""Chaos controls and request accounting, shared by the four sandbox systems.

Every sandbox system serves ``GET /_sandbox/chaos`` and ``PUT`` or ``POST`` of a partial
object to it (contract)::

    {"outage": false, "latency_ms": [min, max], "error_rate": 0.0,
     "throttle": false, "malformed_rate": 0.0, "webhooks": true}

- ``outage``: every vendor call is refused with 503 and the connection is closed;
- ``latency_ms``: each vendor call waits a uniform time in that range first;
- ``error_rate``: that share of calls fail with the vendor's own 500 body;
- ``throttle``: every call gets the vendor's own rate-limit answer;
- ``malformed_rate``: that share of answers have their body cut short (invalid JSON);
- ``webhooks``: while false the system sends no webhooks; events raised meanwhile are
  dropped for delivery for good (counted as ``suppressed`` in the stats' ``webhooks``)
  but still reach the system's change feed.

``POST /_sandbox/reset`` restores the defaults and the seeded data.
``GET /_sandbox/stats`` reports the calls the system received (with timestamps), so tests
can prove a client never exceeded a rate, and the webhook sender's counters.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Chaos", "ChaosMiddleware", "ChaosSettings", "Dialect", "RequestLog"]

#: Requests bodies above this size are refused with the vendor's 413 answer.
MAX_BODY_BYTES = 1 << 20


@dataclass(slots=True)
class ChaosSettings:
    outage: bool = False
    latency_ms: tuple[float, float] = (0.0, 0.0)
    error_rate: float = 0.0
    throttle: bool = False
    malformed_rate: float = 0.0
    webhooks: bool = True

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["latency_ms"] = list(self.latency_ms)
        return data

    def merged(self, patch: object) -> ChaosSettings:
        """A copy with ``patch`` applied; ValueError names the bad key."""
        if not isinstance(patch, dict):
            raise ValueError("body must be a JSON object")
        new = ChaosSettings(**self.to_json())
        new.latency_ms = self.latency_ms
        for key, value in patch.items():
            if key in ("outage", "throttle", "webhooks"):
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be true or false")
                setattr(new, key, value)
            elif key in ("error_rate", "malformed_rate"):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"{key} must be a number from 0 to 1")
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{key} must be a number from 0 to 1")
                setattr(new, key, float(value))
            elif key == "latency_ms":
                if (
                    not isinstance(value, list)
                    or len(value) != 2
                    or not all(
                        isinstance(v, int | float) and not isinstance(v, bool) for v in value
                    )
                    or not 0 <= value[0] <= value[1] <= 60_000
                ):
                    raise ValueError("latency_ms must be [min, max] with 0 <= min <= max <= 60000")
                new.latency_ms = (float(value[0]), float(value[1]))
            else:
                raise ValueError(f"unknown chaos setting {key!r}")
        return new


@dataclass(slots=True)
class RequestLog:
    """Counts of vendor calls received, with the last timestamps (monotonic seconds)."""

    total: int = 0
    by_route: dict[str, int] = field(default_factory=dict)
    timestamps: deque[float] = field(default_factory=lambda: deque(maxlen=50_000))
    #: the last calls' correlation headers, so a test can see what reached the vendor
    recent: deque[dict[str, str | None]] = field(default_factory=lambda: deque(maxlen=1_000))

    def record(self, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> None:
        self.total += 1
        key = f"{method} {path}"
        self.by_route[key] = self.by_route.get(key, 0) + 1
        self.timestamps.append(time.monotonic())
        correlation = traceparent = None
        for name, value in headers:
            if name == b"x-correlation-id":
                correlation = value.decode("latin-1")
            elif name == b"traceparent":
                traceparent = value.decode("latin-1")
        self.recent.append(
            {"route": key, "correlation_id": correlation, "traceparent": traceparent}
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.total,
            "by_route": self.by_route,
            "timestamps": list(self.timestamps),
            "recent": list(self.recent),
            "now": time.monotonic(),
        }


class Dialect(Protocol):
    """How one vendor says things the chaos layer needs to say."""

    system: str

    def error_response(self, status: int, message: str) -> Response:
        """The vendor's own error body for ``status`` (500, 413, ...)."""
        ...

    def throttle_response(self) -> Response:
        """The vendor's own rate-limit answer (429, 403 REQUEST_LIMIT_EXCEEDED, 503)."""
        ...


@dataclass(slots=True)
class Chaos:
    settings: ChaosSettings = field(default_factory=ChaosSettings)
    log: RequestLog = field(default_factory=RequestLog)
    rng: random.Random = field(default_factory=random.Random)


class ChaosMiddleware:
    """Pure ASGI middleware: applies chaos to vendor calls and serves ``/_sandbox/*``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        dialect: Dialect,
        chaos: Chaos,
        on_reset: Callable[[], Awaitable[None]],
        webhook_stats: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.app = app
        self.dialect = dialect
        self.chaos = chaos
        self.on_reset = on_reset
        self.webhook_stats = webhook_stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/_sandbox/"):
            await self._control(scope, receive, send)
            return
        self.chaos.log.record(scope["method"], path, scope["headers"])
        settings = self.chaos.settings
        rng = self.chaos.rng
        if settings.outage:
            response: Response = Response(
                b"service unavailable", status_code=503, headers={"Connection": "close"}
            )
            await response(scope, receive, send)
            return
        low, high = settings.latency_ms
        if high > 0:
            await anyio.sleep(rng.uniform(low, high) / 1000)
        if settings.throttle:
            await self.dialect.throttle_response()(scope, receive, send)
            return
        if settings.error_rate and rng.random() < settings.error_rate:
            response = self.dialect.error_response(500, "Injected failure (sandbox chaos).")
            await response(scope, receive, send)
            return
        length, chunked = _body_framing(scope)
        if length is not None and length > MAX_BODY_BYTES:
            response = self.dialect.error_response(413, "Request body too large.")
            await response(scope, receive, send)
            return
        malformed = bool(settings.malformed_rate) and rng.random() < settings.malformed_rate
        if not chunked and not malformed:
            # the body is framed by its Content-Length (checked above) or absent: nothing
            # to count or cut, so the call goes through without wrappers
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        out: Send = _truncating(tracking_send) if malformed else tracking_send
        try:
            await self.app(scope, _limit_body(receive, self.dialect, scope), out)
        except BodyTooLarge:
            if started:
                raise
            response = self.dialect.error_response(413, "Request body too large.")
            await response(scope, receive, send)

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        path, method = scope["path"], scope["method"]
        response: Response
        if path == "/_sandbox/chaos" and method == "GET":
            response = _json(self.chaos.settings.to_json())
        elif path == "/_sandbox/chaos" and method in ("PUT", "POST"):
            try:
                patch = orjson.loads(await request.body())
                self.chaos.settings = self.chaos.settings.merged(patch)
            except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
                response = _json({"error": str(exc)}, status=400)
            else:
                response = _json(self.chaos.settings.to_json())
        elif path == "/_sandbox/reset" and method == "POST":
            self.chaos.settings = ChaosSettings()
            self.chaos.log = RequestLog()
            await self.on_reset()
            response = _json({"reset": True})
        elif path == "/_sandbox/stats" and method == "GET":
            stats = self.chaos.log.to_json()
            if self.webhook_stats is not None:
                stats["webhooks"] = self.webhook_stats()
            response = _json(stats)
        else:
            response = _json({"error": f"no sandbox control {method} {path}"}, status=404)
        await response(scope, receive, send)


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _body_framing(scope: Scope) -> tuple[int | None, bool]:
    """The request's Content-Length (None if absent or unreadable) and whether its body
    comes in chunks (``Transfer-Encoding``), which only counting as it arrives can limit."""
    length: int | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                chunked = True  # an unreadable length: count what arrives instead
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked


class BodyTooLarge(Exception):
    """A chunked request body grew past MAX_BODY_BYTES."""


def _limit_body(receive: Receive, dialect: Dialect, scope: Scope) -> Receive:
    seen = 0

    async def limited() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > MAX_BODY_BYTES:
                raise BodyTooLarge(f"{dialect.system}: request body over {MAX_BODY_BYTES} bytes")
        return message

    return limited


def _truncating(send: Send) -> Send:
    """Send the app's answer with its body cut in half: a malformed answer."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def wrapped(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            body = body[: max(1, len(body) // 2)] if body else b"{"
            assert start is not None
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return wrapped
