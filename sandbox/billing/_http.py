"""The request pipeline every billing endpoint shares, in the order Stripe applies it.

``Edge`` (outermost ASGI middleware, outside the chaos layer) gives every answer a
``Request-Id`` and refuses a second request with an ``Idempotency-Key`` that is still
being served (409): the key is taken before the chaos latency, so a slow first request
really is "in progress". Then, per endpoint (``Api.route``): API key (401), the built-in
rate limit (429), form parsing, the idempotency replay (a stored answer, or 400
``idempotency_error`` when the parameters differ), parameter checks (400, not stored),
the handler (its answer is stored for 24 h, errors and 500s included), ``expand``.

As at Stripe, only requests whose endpoint started executing are stored: a 401, a 429,
a parameter error or a chaos-injected failure (outage, throttle, error rate) leaves the
key free, so a retry with the same key really runs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.app import SandboxState, state_of
from sandbox.billing._errors import (
    StripeError,
    error_response,
    json_response,
    rate_limit_error,
    request_id,
)
from sandbox.billing._forms import MAX_PARAMS, Check, parse_form
from sandbox.billing._objects import API_VERSION, clone, new_id

__all__ = ["API_KEYS", "Api", "Ctx", "Edge", "RateLimit", "api_key_of", "paginate"]

log = logging.getLogger(__name__)

#: the sandbox's secret keys (contract: Bearer sk_test_crosswalk)
API_KEYS = frozenset({"sk_test_crosswalk"})
IDEMPOTENCY_TTL = 24 * 3600.0
_REQUEST_ID = "billing.request_id"
_FORM = "application/x-www-form-urlencoded"


def api_key_of(authorization: str | None) -> str | None:
    """The key from ``Bearer <key>`` or ``Basic base64(<key>:)``, as Stripe accepts both."""
    if not authorization:
        return None
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return credential.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credential.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[0] or None
    return None


def _mask(key: str) -> str:
    return key[:8] + "*" * max(0, len(key) - 12) + key[-4:] if len(key) > 12 else "****"


def authenticate(request: Request) -> str:
    header = request.headers.get("authorization")
    key = api_key_of(header)
    if key is None:
        raise StripeError(
            401,
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY').",
        )
    if key not in API_KEYS:
        raise StripeError(401, f"Invalid API Key provided: {_mask(key)}")
    return key


@dataclass(slots=True)
class RateLimit:
    """A token bucket per API key: ``per_second`` sustained, ``burst`` at once."""

    per_second: float = 100.0
    burst: float = 100.0
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, key: str) -> bool:
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.per_second)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1, now)
        return True


class Edge:
    """Outermost middleware: ``Request-Id`` on every answer, 409 for a key in flight."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.in_flight: set[tuple[str, str]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox/"):
            await self.app(scope, receive, send)
            return
        rid = request_id()
        scope[_REQUEST_ID] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"request-id" for name, _ in headers):
                    headers.append((b"request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        if scope["method"] != "POST":
            await self.app(scope, receive, send_with_id)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        idem = headers.get("idempotency-key")
        if not idem:
            await self.app(scope, receive, send_with_id)
            return
        slot = (api_key_of(headers.get("authorization")) or "", idem)
        if slot in self.in_flight:
            error = StripeError(
                409,
                "There is currently another in-progress request using this Idempotency-Key "
                "(that probably means you submitted twice, and the other request is still "
                "going through). Please try again later.",
                code="idempotency_key_in_use",
                should_retry=True,
            )
            await error.response()(scope, receive, send_with_id)
            return
        self.in_flight.add(slot)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.in_flight.discard(slot)


@dataclass(slots=True)
class Ctx:
    """What a handler gets: the state, checked params and where the request came from."""

    request: Request
    state: SandboxState
    params: dict[str, Any]
    request_id: str
    idempotency_key: str | None
    now: int

    def path(self, name: str) -> str:
        value: str = self.request.path_params[name]
        return value

    async def emit(
        self,
        type: str,
        obj: dict[str, Any],
        previous: dict[str, Any] | None = None,
    ) -> None:
        """Record and push one event (``GET /v1/events`` and the webhook).

        The event keeps a copy of ``obj`` as it is now: later writes (or an ``expand`` on
        the answer) must not change what the event says happened. It is recorded also
        while webhooks are off (chaos), with ``pending_webhooks`` 0 then.
        """
        data: dict[str, Any] = {"object": clone(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        event_id = new_id("evt_")
        sending = self.state.config.webhook_url is not None
        event = {
            "id": event_id,
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": data,
            "livemode": False,
            "pending_webhooks": int(sending and self.state.chaos.settings.webhooks),
            "request": {"id": self.request_id, "idempotency_key": self.idempotency_key},
            "type": type,
        }
        store = self.state.store
        await store.put("event", event_id, event)
        # pushed once committed: at the end of the request's batch (see ``Api._run``)
        if self.state.webhooks.enabled:
            store.after_commit(partial(self.state.webhooks.publish, orjson.dumps(event)))


Handler = Callable[[Ctx], Awaitable[dict[str, Any]]]
#: expandable fields per object type -> the kind of the object the id points at
EXPANDABLE: dict[str, dict[str, str]] = {
    "subscription": {"customer": "customer", "latest_invoice": "invoice"},
    "invoice": {"customer": "customer", "subscription": "subscription"},
    "credit_note": {"customer": "customer", "invoice": "invoice"},
    "price": {"product": "product"},
    "product": {"default_price": "price"},
    "line_item": {"subscription": "subscription"},
}


@dataclass(slots=True)
class Api:
    """Builds the routes; holds what lives as long as the app (rate buckets, write lock)."""

    rate: RateLimit
    write_lock: anyio.Lock = field(default_factory=lambda: anyio.Lock(fast_acquire=True))

    def route(
        self,
        method: str,
        path: str,
        check: Check,
        handler: Handler,
        *,
        returns: str,
        listing: bool = False,
    ) -> Route:
        """``returns``: the object type answered (of each item when ``listing``)."""

        def checked(raw: Any, param: str) -> Any:
            params = check(raw, param)
            for target in params.get("expand") or ():
                _check_expand(target, returns, listing)
            return params

        async def view(request: Request) -> Response:
            try:
                return await self._serve(request, method, checked, handler)
            except StripeError as error:
                return error_response(error)

        return Route(path, view, methods=[method])

    async def _serve(
        self, request: Request, method: str, check: Check, handler: Handler
    ) -> Response:
        rid = request.scope.get(_REQUEST_ID) or request_id()
        api_key = authenticate(request)
        if not self.rate.take(api_key):
            raise rate_limit_error()
        raw = await _raw_params(request, method)
        state = state_of(request)
        idem = request.headers.get("idempotency-key") if method == "POST" else None
        slot = fingerprint = None
        if idem is not None:
            if len(idem) > 255:
                raise StripeError(
                    400, "Idempotency-Key must be at most 255 characters.", param="Idempotency-Key"
                )
            slot = "idem:" + hashlib.sha256(f"{api_key}\0{idem}".encode()).hexdigest()
            fingerprint = hashlib.sha256(
                orjson.dumps([method, request.url.path, raw], option=orjson.OPT_SORT_KEYS)
            ).hexdigest()
            stored = await state.store.kv_get(slot, time.time())
            if stored is not None:
                return _replay(stored, fingerprint, idem)
        params = check(raw, "")
        ctx = Ctx(request, state, params, rid, idem, int(time.time()))
        if method == "GET":
            status, body = await self._run(ctx, handler)
        else:
            # writes one at a time: read-modify-write of a record never interleaves; a
            # request's records and its idempotency answer are committed together, in one
            # transaction, before the lock is released (a subscription's create writes
            # about ten records): a crash keeps both or neither
            async with self.write_lock, state.store.batch():
                status, body = await self._run(ctx, handler)
                if slot is not None:
                    answer = {
                        "fingerprint": fingerprint,
                        "status": status,
                        "body": body,
                        "request": rid,
                    }
                    await state.store.kv_put(slot, answer, time.time() + IDEMPOTENCY_TTL)
        headers: dict[str, str] = {}
        if status >= 400:
            headers["Stripe-Should-Retry"] = "true" if status >= 500 or status == 409 else "false"
        return json_response(body, status, headers)

    async def _run(self, ctx: Ctx, handler: Handler) -> tuple[int, dict[str, Any]]:
        try:
            obj = await handler(ctx)
            expand = ctx.params.get("expand")
            if expand:
                obj = expand_paths(obj, expand, ctx.state)
        except StripeError as refused:
            return refused.status, refused.body()
        except Exception:
            # a boundary: the vendor answers 500 api_error, and Stripe stores it for replay
            log.exception("billing sandbox handler failed on %s", ctx.request.url.path)
            failure = StripeError(500, "An unknown error occurred.", type="api_error")
            return 500, failure.body()
        return 200, obj


def _replay(stored: dict[str, Any], fingerprint: str | None, key: str) -> Response:
    if stored.get("fingerprint") != fingerprint:
        raise StripeError(
            400,
            f"Keys for idempotent requests can only be used with the same parameters they were "
            f"first used with. Try using a key other than '{key}' if you meant to execute a "
            "different request.",
            type="idempotency_error",
        )
    status = int(stored["status"])
    headers = {"Idempotent-Replayed": "true", "Original-Request": str(stored["request"])}
    if status >= 400:
        # the same key always gets this answer again: retrying it cannot help
        headers["Stripe-Should-Retry"] = "false"
    return json_response(stored["body"], status, headers)


async def _raw_params(request: Request, method: str) -> dict[str, Any]:
    pairs: list[tuple[str, str]] = list(request.query_params.multi_items())
    if method == "POST":
        body = await request.body()
        if body.strip():
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != _FORM:
                raise StripeError(
                    400,
                    "Invalid request (check that your POST content type is "
                    "application/x-www-form-urlencoded). If you have any questions, we can "
                    "help at https://support.stripe.com/.",
                )
            try:
                text = body.decode("utf-8")
                pairs += parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_PARAMS)
            except (UnicodeDecodeError, ValueError) as exc:
                raise StripeError(400, f"Invalid request body: {exc}") from exc
    return parse_form(pairs)


def expand_paths(obj: dict[str, Any], paths: Iterable[str], state: SandboxState) -> dict[str, Any]:
    """A copy of ``obj`` with the ``expand[]`` paths replaced by the objects they name."""
    out = clone(obj)
    for path in paths:
        _expand(out, path.split("."), state, path)
    return out


def _check_expand(path: str, returns: str, listing: bool) -> None:
    """Refuse an ``expand[]`` path before the request has any effect."""
    parts = path.split(".")
    if listing:
        if parts[0] != "data":
            raise StripeError(400, f"This property cannot be expanded ({path}).", param="expand")
        parts = parts[1:]
    current = returns
    for part in parts:
        kind = EXPANDABLE.get(current, {}).get(part)
        if kind is None:
            raise StripeError(400, f"This property cannot be expanded ({path}).", param="expand")
        current = kind


def _expand(obj: Any, parts: list[str], state: SandboxState, path: str) -> None:
    if not parts or not isinstance(obj, dict):
        return
    head, rest = parts[0], parts[1:]
    if obj.get("object") in ("list", "search_result") and head == "data":
        for item in obj.get("data", []):
            _expand(item, rest, state, path)
        return
    kind = EXPANDABLE.get(str(obj.get("object")), {}).get(head)
    if kind is None:
        raise StripeError(400, f"This property cannot be expanded ({path}).", param="expand")
    value = obj.get(head)
    if isinstance(value, str):
        target = state.store.get(kind, value)
        if target is not None:
            obj[head] = clone(target)
    _expand(obj.get(head), rest, state, path)


# ---------------------------------------------------------------- lists


def paginate(
    docs: list[dict[str, Any]], params: dict[str, Any], url: str, *, everything: list[Any]
) -> dict[str, Any]:
    """Newest first (``created`` desc, later insertion first), cut by the cursor params.

    ``everything`` is the whole kind in insertion order: a cursor may name an object the
    filters leave out, as Stripe allows.
    """
    seq = {doc["id"]: n for n, doc in enumerate(everything)}

    def key(doc: dict[str, Any]) -> tuple[int, int]:
        return (-int(doc["created"]), -seq.get(doc["id"], 0))

    ordered = sorted(docs, key=key)
    limit = int(params.get("limit", 10))
    after, before = params.get("starting_after"), params.get("ending_before")
    if after and before:
        raise StripeError(
            400, "You may only specify one of these parameters: ending_before, starting_after."
        )
    cursor_name = "starting_after" if after else "ending_before"
    cursor_id = after or before
    if cursor_id:
        cursor = next((d for d in everything if d["id"] == cursor_id), None)
        if cursor is None or cursor.get("deleted"):
            raise StripeError(
                400,
                f"No such object: '{cursor_id}'",
                code="resource_missing",
                param=cursor_name,
            )
        mark = key(cursor)
        if after:
            rest = [d for d in ordered if key(d) > mark]
            page, has_more = rest[:limit], len(rest) > limit
        else:
            rest = [d for d in ordered if key(d) < mark]
            page, has_more = rest[-limit:], len(rest) > limit
    else:
        page, has_more = ordered[:limit], len(ordered) > limit
    return {"object": "list", "data": page, "has_more": has_more, "url": url}


async def unknown_route(request: Request) -> Response:
    error = StripeError(
        404,
        f"Unrecognized request URL ({request.method}: {request.url.path}). Please see "
        "https://stripe.com/docs or we can help at https://support.stripe.com/.",
    )
    return error.response()
