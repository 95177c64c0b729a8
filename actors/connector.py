"""The connector contract, and the HTTP plumbing every connector shares.

A connector owns one system's wire format: it turns ``actors.messages`` into that vendor's
HTTP calls and the answers into ``canonical`` records. It knows nothing of
priorities, breakers or retries: the actor around it does that. It does map every failure
to an ``actors.errors`` class, because only the connector knows what the vendor meant
(Salesforce's 403 ``REQUEST_LIMIT_EXCEEDED`` is a throttle, not a permission problem).

aiohttp is the outbound client (measured: several times less CPU per request than httpx
for the read fan-out). It stays behind this module: nothing outside ``actors/`` imports it.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self

import aiohttp
import orjson

from actors import tracing
from actors.calls import CallObserver, VendorCall, outcome_of
from actors.context import current_attempt, current_call, outgoing_headers
from actors.errors import LimitExceeded, MalformedResponse, SystemTimeout, SystemUnavailable
from actors.messages import Message
from canonical import System

__all__ = ["Connector", "Endpoint", "HttpConnector", "Response"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a system lives and how to authenticate to it (from ``policies/systems.toml``)."""

    base_url: str  # e.g. "http://127.0.0.1:8101", no trailing slash
    credentials: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 5.0  # seconds per HTTP call, on top of the caller's deadline
    max_connections: int = 64
    #: the largest answer body read; a larger one is refused with LimitExceeded
    max_body_bytes: int = 8 * 1024 * 1024
    #: the most pages one paging walk follows; past it, LimitExceeded
    max_pages: int = 1000
    #: the longest vendor pause (Retry-After) obeyed, in seconds; longer ones are capped
    max_retry_after: float = 60.0
    # the name the gateway writes as (Salesforce changeOrigin, Zendesk via, Stripe metadata)
    client_name: str = "crosswalk"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"answer is not JSON: {self.body[:80]!r}") from exc


class Connector(Protocol):
    """What an actor needs from a connector."""

    system: System

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def handle(self, message: Message) -> object:
        """Carry out one message; answer as ``actors.messages`` documents, or raise."""
        ...

    async def ping(self) -> float:
        """One cheap authenticated call; answer its round-trip in seconds, or raise."""
        ...


class HttpConnector:
    """Base for the four connectors: one tuned aiohttp session per system.

    Subclasses set ``system`` and implement ``handle``; they call ``request`` and map
    vendor errors with their package's ``errors.raise_for`` (``actors/erp/errors.py`` ...).
    Lifecycle: use ``async with``; a closed connector cannot be reopened.
    """

    system: System
    #: awaited before every HTTP call; the system's actor sets it to its rate limiter, so
    #: the vendor's rate holds per call however many calls one message takes (fan-out)
    pace: Callable[[], Awaitable[None]] | None = None
    #: told about every HTTP call once it ended (``actors.calls``); ``Systems`` sets it
    observe: CallObserver | None = None

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    async def __aenter__(self) -> Self:
        if self._closed:
            raise RuntimeError(
                f"Cannot reopen the {self.system} connector once it has been closed."
            )
        connector = aiohttp.TCPConnector(
            limit=self.endpoint.max_connections,
            keepalive_timeout=30,
            ttl_dns_cache=300,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.endpoint.timeout),
            json_serialize=lambda obj: orjson.dumps(obj).decode(),
            skip_auto_headers=("User-Agent",),
            headers={"User-Agent": "crosswalk/0.1"},
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"The {self.system} connector is not open: use 'async with'.")
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | list[tuple[str, str]] | None = None,
        json: object = None,
        data: Mapping[str, str] | list[tuple[str, str]] | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """One HTTP call; transport failures become SystemUnavailable / SystemTimeout."""
        if self.pace is not None:
            await self.pace()
        url = path if path.startswith("http") else self.endpoint.base_url + path
        body: bytes | None = None
        call = current_call()
        hdrs = outgoing_headers(call)
        if headers:
            hdrs.update(headers)
        if json is not None:
            body = orjson.dumps(json)
            hdrs.setdefault("Content-Type", "application/json")
        sent = body if body is not None else data
        if tracing.enabled():
            attributes = {
                "http.request.method": method,
                "url.path": path.partition("?")[0][:200],
                "crosswalk.system": str(self.system),
            }
            if call is not None:
                attributes["crosswalk.correlation_id"] = call.correlation_id
            with tracing.span(f"HTTP {method} {self.system}", attributes) as span:
                response = await self._observed(method, url, path, params, sent, hdrs)
                span.set_attribute("http.response.status_code", response.status)
                return response
        return await self._observed(method, url, path, params, sent, hdrs)

    async def _observed(
        self,
        method: str,
        url: str,
        path: str,
        params: Mapping[str, str] | list[tuple[str, str]] | None,
        sent: Mapping[str, str] | list[tuple[str, str]] | bytes | None,
        hdrs: dict[str, str],
    ) -> Response:
        observe = self.observe
        if observe is None:
            return await self._send(method, url, path, params, sent, hdrs)
        call = current_call()
        at = time.time()
        started = time.perf_counter()
        status: int | None = None
        outcome = "cancelled"
        try:
            response = await self._send(method, url, path, params, sent, hdrs)
            status = response.status
            outcome = outcome_of(status)
            return response
        except SystemTimeout:
            outcome = "timeout"
            raise
        except SystemUnavailable:
            outcome = "unavailable"
            raise
        except LimitExceeded:
            outcome = "too_large"
            raise
        finally:
            observe(
                VendorCall(
                    system=self.system.value,
                    method=method.upper(),
                    path=_bare_path(path),
                    status=status,
                    latency_ms=round((time.perf_counter() - started) * 1000, 3),
                    attempt=current_attempt(),
                    outcome=outcome,
                    at=at,
                    correlation_id=None if call is None else call.correlation_id,
                    actor=None if call is None else call.actor,
                )
            )

    async def _send(
        self,
        method: str,
        url: str,
        path: str,
        params: Mapping[str, str] | list[tuple[str, str]] | None,
        data: Mapping[str, str] | list[tuple[str, str]] | bytes | None,
        headers: dict[str, str],
    ) -> Response:
        try:
            async with self.session.request(
                method, url, params=params, data=data, headers=headers
            ) as resp:
                return Response(resp.status, resp.headers, await self._read(resp, method, path))
        except TimeoutError as exc:
            raise SystemTimeout(self.system, f"no answer from {method} {path}") from exc
        except aiohttp.ClientError as exc:
            raise SystemUnavailable(self.system, f"{method} {path} failed: {exc}") from exc

    async def _read(self, resp: aiohttp.ClientResponse, method: str, path: str) -> bytes:
        """The body, never more than ``max_body_bytes`` of it (LimitExceeded past that)."""
        limit = self.endpoint.max_body_bytes
        length = resp.content_length
        if length is not None and length <= limit:
            return await resp.read()  # the common case: one read, size known and allowed
        if length is None:
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > limit:
                    break
                chunks.append(chunk)
            else:
                return b"".join(chunks)
        raise LimitExceeded(
            self.system,
            f"{method} {path} answered more than {limit} bytes "
            "(bounds.max_body_bytes in policies/systems.toml)",
        )

    def paging_limit(self, what: str) -> LimitExceeded:
        """The error for a paging walk that went past ``max_pages``."""
        return LimitExceeded(
            self.system,
            f"{what} went past {self.endpoint.max_pages} pages "
            "(bounds.max_pages in policies/systems.toml)",
        )

    def decode(self, response: Response) -> Any:
        """The JSON body, or MalformedResponse naming what came back."""
        try:
            return response.json()
        except ValueError as exc:
            raise MalformedResponse(self.system, str(exc), status=response.status) from exc

    async def ping(self) -> float:
        start = time.perf_counter()
        await self._ping()
        return time.perf_counter() - start

    async def _ping(self) -> None:
        raise NotImplementedError


def _bare_path(path: str) -> str:
    """``path`` (or a full URL a vendor handed back for paging) without host or query."""
    if path.startswith("http"):
        return urllib.parse.urlsplit(path).path or "/"
    return path.partition("?")[0]
