"""``POST /webhooks/{system}``: verify, deduplicate, record (a contract with the senders).

Answers, in the order they are checked:

- 404 unknown system (nothing read);
- 413 a body over ``MAX_BODY`` bytes (stops reading there);
- 401 a missing, malformed, wrong or expired signature (nothing stored);
- 400 a body that is not JSON or not an event of that vendor (nothing stored);
- 200 ``{"received": true, "duplicate": false, "event": {"id", "type"}}``: the canonical
  event is in the inbox, with an audit entry under the request's correlation id, in one
  transaction. Echoes of our own writes are stored already processed;
- 200 with ``"duplicate": true`` for an event id the inbox already holds: vendors retry
  until they see a 2xx, so a redelivery is acknowledged and nothing new is stored;
- 503 with ``Retry-After`` when the store cannot take the event now (the vendor retries).

The signature is checked before the body is parsed: unauthenticated input is never
decoded.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from canonical import System
from gateway.governance.webhooks import WebhooksPolicy
from gateway.observability.correlation import current_correlation_id
from gateway.store import NewAudit, Store, StoreError
from gateway.webhooks.errors import EventInvalid, SignatureError
from gateway.webhooks.events import OWN_CLIENT, CanonicalEvent, map_event
from gateway.webhooks.verify import verify_request

__all__ = ["MAX_BODY", "Receipt", "record_event", "webhook_endpoint"]

log = logging.getLogger(__name__)

#: vendors' events are a few KiB; a larger body is refused before it is buffered
MAX_BODY = 1024 * 1024
#: how long a slow sender may take to send the body
BODY_DEADLINE = 30.0
#: how long recording may wait on the store before the vendor is asked to retry
STORE_DEADLINE = 10.0

Endpoint = Callable[[Request], Awaitable[Response]]


class _TooLarge(Exception):
    pass


def _json(body: object, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def _error(status: int, code: str, message: str, *, retry_after: int | None = None) -> Response:
    headers = None if retry_after is None else {"Retry-After": str(retry_after)}
    return _json({"error": {"code": code, "message": message}}, status, headers)


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    # also bounded when chunked or the length header lies
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What recording an event did: stored it, or found it already there."""

    event: CanonicalEvent
    duplicate: bool


async def record_event(
    store: Store, event: CanonicalEvent, *, correlation_id: str | None
) -> Receipt:
    """Put ``event`` in the inbox with its audit entry, in one transaction.

    A duplicate (same system and event id) writes nothing. An echo of our own write is
    stored already processed, so no process acts on it."""
    system = event.system.value
    async with store.transaction() as tx:
        if not await tx.record_inbox(system, event.id, event.envelope()):
            return Receipt(event, duplicate=True)
        await tx.append_audit(
            NewAudit(
                actor=f"webhook:{system}",
                action="webhook.echo_ignored" if event.echo else "webhook.received",
                subject=f"event:{system}:{event.id}",
                correlation_id=correlation_id,
                detail={"type": event.type, "subject": event.subject, "echo": event.echo},
            )
        )
        if event.echo:
            await tx.mark_inbox_processed(system, event.id)
    return Receipt(event, duplicate=False)


def webhook_endpoint(
    policies: WebhooksPolicy,
    store: Callable[[], Store],
    *,
    own_client: str = OWN_CLIENT,
) -> Endpoint:
    """The Starlette endpoint for ``/webhooks/{system}``; ``store()`` gives the open store
    (it raises ``RuntimeError`` while the gateway is not started)."""

    async def receive(request: Request) -> Response:
        name = request.path_params.get("system", "")
        try:
            system = System(name)
            policy = policies[system]
        except (ValueError, KeyError):
            known = ", ".join(s.value for s in System)
            return _error(
                404, "UNKNOWN_SYSTEM", f"no webhook for {name!r}; expected one of {known}"
            )
        try:
            with anyio.fail_after(BODY_DEADLINE):
                body = await _read_body(request)
        except _TooLarge:
            return _error(413, "PAYLOAD_TOO_LARGE", f"body over {MAX_BODY} bytes")
        except TimeoutError:
            return _error(408, "REQUEST_TIMEOUT", f"body not received in {BODY_DEADLINE:.0f} s")
        except ClientDisconnect:
            return _error(400, "CLIENT_DISCONNECTED", "the sender hung up before the body ended")
        try:
            verify_request(policy, body, request.headers)
        except SignatureError as exc:
            log.warning("webhook from %s refused: %s", system, exc)
            return _error(401, type(exc).__name__, str(exc))
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _error(400, "NOT_JSON", f"body is not JSON: {exc}")
        try:
            event = map_event(system, payload, own_client=own_client)
        except EventInvalid as exc:
            return _error(400, "EVENT_INVALID", str(exc))
        try:
            opened = store()
        except RuntimeError:
            return _error(503, "STARTING", "the gateway is starting; retry", retry_after=5)
        try:
            with anyio.fail_after(STORE_DEADLINE):
                receipt = await record_event(opened, event, correlation_id=current_correlation_id())
        except (StoreError, TimeoutError) as exc:
            log.warning("webhook %s %s not recorded: %s", system, event.id, exc)
            return _error(
                503,
                "STORE_UNAVAILABLE",
                "the event could not be recorded; retry",
                retry_after=5,
            )
        return _json(
            {
                "received": True,
                "duplicate": receipt.duplicate,
                "event": {"id": event.id, "type": event.type},
            },
            200,
        )

    return receive
