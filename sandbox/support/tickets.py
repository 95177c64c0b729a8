"""Ticket endpoints: create (with ``Idempotency-Key``), read, update, delete, list, show_many."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from sandbox.app import SandboxState
from sandbox.docstore import Doc

from .api import Api, base_url
from .events import ticket_events
from .paging import paginate
from .validate import clean_ticket, envelope, parse_ids
from .wire import ZendeskError, json_response, not_found, now_iso, read_json
from .world import AGENT_ID, DELETED_TICKET, ORG, TICKET, USER, next_id, render

__all__ = ["ROUTES"]

#: the docstore kind of ticket comments
COMMENT = "comment"
#: how long an Idempotency-Key is remembered (Zendesk: two hours)
IDEMPOTENCY_TTL = 2 * 3600.0


def _audit(
    audit_id: int, before: Doc | None, after: Doc, comment: str | None, public: bool = True
) -> dict[str, Any]:
    """The ticket audit Zendesk answers beside a created or updated ticket."""
    events: list[dict[str, Any]] = []

    def add(kind: str, **fields: Any) -> None:
        events.append({"id": audit_id * 100 + len(events) + 1, "type": kind, **fields})

    if comment is not None:
        add("Comment", author_id=AGENT_ID, body=comment, public=public)
    for name in ("subject", "status", "priority", "type", "assignee_id", "organization_id", "tags"):
        if before is None:
            add("Create", field_name=name, value=after[name])
        elif before[name] != after[name]:
            add("Change", field_name=name, value=after[name], previous_value=before[name])
    return {
        "id": audit_id,
        "ticket_id": after["id"],
        "created_at": after["updated_at"],
        "author_id": AGENT_ID,
        "metadata": {"system": {"client": "sandbox"}, "custom": {}},
        "events": events,
        "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}},
    }


def _comment(data: dict[str, Any]) -> str | None:
    comment = data.get("comment")
    body = comment.get("body") if isinstance(comment, dict) else None
    return body if isinstance(body, str) else None


def _public(data: dict[str, Any]) -> bool:
    """A comment is public unless it says ``"public": false`` (an internal note)."""
    comment = data.get("comment")
    return not (isinstance(comment, dict) and comment.get("public") is False)


async def _keep_comment(state: SandboxState, ticket: Doc, body: str, public: bool) -> None:
    number = await state.store.next_number("comment")
    await state.store.put(
        COMMENT,
        str(number),
        {
            "id": number,
            "ticket_id": ticket["id"],
            "type": "Comment",
            "author_id": AGENT_ID,
            "body": body,
            "html_body": f"<p>{body}</p>",
            "plain_body": body,
            "public": public,
            "created_at": ticket["updated_at"],
        },
    )


async def ticket_comments(api: Api, request: Request, state: SandboxState) -> Response:
    """``GET /tickets/{id}/comments``: the ticket's comments, oldest first."""
    ticket = _load(state, _ticket_id(request))
    comments = sorted(
        (c for c in state.store.all(COMMENT) if c["ticket_id"] == ticket["id"]),
        key=lambda c: int(c["id"]),
    )
    return json_response(
        {"comments": comments, "next_page": None, "previous_page": None, "count": len(comments)}
    )


def _ticket_id(request: Request) -> str:
    return str(request.path_params["id"])


def _load(state: SandboxState, ticket_id: str) -> Doc:
    doc = state.store.get(TICKET, ticket_id)
    if doc is None:
        raise not_found()
    return doc


async def list_tickets(api: Api, request: Request, state: SandboxState) -> Response:
    base = base_url(request)
    records = state.store.all(TICKET)
    external_id = request.query_params.get("external_id")
    if external_id is not None:
        records = [t for t in records if t["external_id"] == external_id]
    return json_response(paginate(request, records, "tickets", lambda d: render(TICKET, d, base)))


async def show_many(api: Api, request: Request, state: SandboxState) -> Response:
    base = base_url(request)
    ids = parse_ids(request.query_params.get("ids"))
    found = [state.store.get(TICKET, str(i)) for i in ids]
    return json_response(
        {
            "tickets": [render(TICKET, d, base) for d in found if d is not None],
            "next_page": None,
            "previous_page": None,
            "count": sum(d is not None for d in found),
        }
    )


async def get_ticket(api: Api, request: Request, state: SandboxState) -> Response:
    doc = _load(state, _ticket_id(request))
    return json_response({"ticket": render(TICKET, doc, base_url(request))})


async def organization_tickets(api: Api, request: Request, state: SandboxState) -> Response:
    org_id = request.path_params["id"]
    if state.store.get(ORG, str(org_id)) is None:
        raise not_found()
    base = base_url(request)
    records = [t for t in state.store.iter(TICKET) if t["organization_id"] == org_id]
    return json_response(paginate(request, records, "tickets", lambda d: render(TICKET, d, base)))


def _default_requester(state: SandboxState, org_id: int | None) -> int:
    if org_id is not None:
        for user in state.store.iter(USER):
            if user["organization_id"] == org_id and user["role"] == "end-user":
                uid: int = user["id"]
                return uid
    return AGENT_ID


async def create_ticket(api: Api, request: Request, state: SandboxState) -> Response:
    body = await read_json(request)
    key = request.headers.get("idempotency-key")
    async with api.write_lock:
        fingerprint = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
        if key is not None:
            if not key or len(key) > 255:
                raise ZendeskError(
                    400,
                    {
                        "error": "InvalidValue",
                        "description": "Idempotency-Key must be 1 to 255 characters",
                    },
                )
            stored = await state.store.kv_get(f"support:idempotency:{key}", time.time())
            if stored is not None:
                if stored["fingerprint"] != fingerprint:
                    raise ZendeskError(
                        400,
                        {
                            "error": "IdempotentRequestError",
                            "description": (
                                "The request parameters do not match the original request "
                                "sent with this Idempotency-Key"
                            ),
                        },
                    )
                headers = {"x-idempotency-lookup": "hit", "Location": stored["location"]}
                return json_response(stored["body"], stored["status"], headers)
        data = envelope(body, "ticket")
        fields = clean_ticket(state, data, None)
        ticket = await _new_ticket(state, fields)
        await state.store.put(TICKET, str(ticket["id"]), ticket)
        rendered = render(TICKET, ticket, base_url(request))
        audit = _audit(await state.store.next_number("audit"), None, ticket, ticket["description"])
        await _keep_comment(state, ticket, ticket["description"], True)
        answer = {"ticket": rendered, "audit": audit}
        headers = {"Location": rendered["url"]}
        if key is not None:
            remembered = {
                "fingerprint": fingerprint,
                "status": 201,
                "body": answer,
                "location": rendered["url"],
            }
            await state.store.kv_put(
                f"support:idempotency:{key}", remembered, time.time() + IDEMPOTENCY_TTL
            )
            headers["x-idempotency-lookup"] = "miss"
    if state.webhooks.enabled:
        for event in ticket_events(None, ticket):
            state.webhooks.publish(event)
    return json_response(answer, 201, headers)


async def _new_ticket(state: SandboxState, fields: dict[str, Any]) -> Doc:
    org_id = fields.get("organization_id")
    requester = fields.get("requester_id") or _default_requester(state, org_id)
    if org_id is None:
        requester_doc = state.store.get(USER, str(requester))
        org_id = requester_doc["organization_id"] if requester_doc else None
    assignee = fields.get("assignee_id")
    description: str = fields["description"]
    subject = fields.get("subject") or description.strip().splitlines()[0][:150]
    stamp = now_iso()
    return {
        "id": await next_id(state, TICKET),
        "external_id": fields.get("external_id"),
        "type": fields.get("type"),
        "subject": subject,
        "description": description,
        "priority": fields.get("priority"),
        "status": fields.get("status") or ("open" if assignee else "new"),
        "requester_id": requester,
        "assignee_id": assignee,
        "organization_id": org_id,
        "tags": fields.get("tags", []),
        "custom_fields": fields.get("custom_fields", []),
        "created_at": stamp,
        "updated_at": stamp,
    }


async def update_ticket(api: Api, request: Request, state: SandboxState) -> Response:
    body = await read_json(request)
    async with api.write_lock:
        current = _load(state, _ticket_id(request))
        data = envelope(body, "ticket")
        fields = clean_ticket(state, data, current)
        changed = {k: v for k, v in fields.items() if k in current and k != "id"}
        if changed.get("requester_id", 0) is None:
            changed.pop("requester_id")
        updated = {**current, **changed, "updated_at": now_iso()}
        await state.store.put(TICKET, str(updated["id"]), updated)
        comment = _comment(data)
        audit = _audit(
            await state.store.next_number("audit"), current, updated, comment, _public(data)
        )
        if comment is not None:
            await _keep_comment(state, updated, comment, _public(data))
    if state.webhooks.enabled:
        for event in ticket_events(current, updated):
            state.webhooks.publish(event)
    rendered = render(TICKET, updated, base_url(request))
    return json_response({"ticket": rendered, "audit": audit})


async def delete_ticket(api: Api, request: Request, state: SandboxState) -> Response:
    async with api.write_lock:
        current = _load(state, _ticket_id(request))
        # the incremental export goes on showing it, as deleted
        gone = {**current, "status": "deleted", "updated_at": now_iso()}
        async with state.store.batch():
            await state.store.delete(TICKET, str(current["id"]))
            await state.store.put(DELETED_TICKET, str(current["id"]), gone)
    return Response(status_code=204)


ROUTES = (
    ("/tickets", list_tickets, "GET"),
    ("/tickets", create_ticket, "POST"),
    ("/tickets/show_many", show_many, "GET"),
    ("/tickets/{id:int}", get_ticket, "GET"),
    ("/tickets/{id:int}", update_ticket, "PUT"),
    ("/tickets/{id:int}", delete_ticket, "DELETE"),
    ("/tickets/{id:int}/comments", ticket_comments, "GET"),
    ("/organizations/{id:int}/tickets", organization_tickets, "GET"),
)
