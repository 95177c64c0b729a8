"""User and SLA policy endpoints."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.app import SandboxState
from sandbox.docstore import Doc

from .api import Api, base_url
from .paging import paginate
from .validate import clean_user, envelope
from .wire import json_response, not_found, now_iso, read_json
from .world import AGENT_ID, SLA, USER, next_id, render

__all__ = ["ROUTES"]


def _load(state: SandboxState, kind: str, request: Request) -> Doc:
    doc = state.store.get(kind, str(request.path_params["id"]))
    if doc is None:
        raise not_found()
    return doc


async def me(api: Api, request: Request, state: SandboxState) -> Response:
    agent = state.store.get(USER, str(AGENT_ID))
    if agent is None:
        raise not_found()
    return json_response({"user": render(USER, agent, base_url(request))})


async def list_users(api: Api, request: Request, state: SandboxState) -> Response:
    base = base_url(request)
    records = state.store.all(USER)
    role = request.query_params.get("role")
    if role is not None:
        records = [u for u in records if u["role"] == role]
    return json_response(paginate(request, records, "users", lambda d: render(USER, d, base)))


async def get_user(api: Api, request: Request, state: SandboxState) -> Response:
    return json_response({"user": render(USER, _load(state, USER, request), base_url(request))})


def _blank(uid: int, stamp: str) -> Doc:
    return {
        "id": uid,
        "name": "",
        "email": None,
        "role": "end-user",
        "organization_id": None,
        "external_id": None,
        "tags": [],
        "active": True,
        "verified": False,
        "created_at": stamp,
        "updated_at": stamp,
    }


async def _create(state: SandboxState, data: dict[str, Any]) -> Doc:
    fields = clean_user(state, data, None)
    user = {**_blank(await next_id(state, USER), now_iso()), **fields}
    await state.store.put(USER, str(user["id"]), user)
    return user


async def _update(state: SandboxState, current: Doc, data: dict[str, Any]) -> Doc:
    fields = clean_user(state, data, current)
    user = {**current, **fields, "updated_at": now_iso()}
    await state.store.put(USER, str(user["id"]), user)
    return user


def _answer(request: Request, user: Doc, status: int) -> Response:
    rendered = render(USER, user, base_url(request))
    headers = {"Location": rendered["url"]} if status == 201 else None
    return json_response({"user": rendered}, status, headers)


async def create_user(api: Api, request: Request, state: SandboxState) -> Response:
    body = await read_json(request)
    async with api.write_lock:
        user = await _create(state, envelope(body, "user"))
    return _answer(request, user, 201)


async def update_user(api: Api, request: Request, state: SandboxState) -> Response:
    body = await read_json(request)
    async with api.write_lock:
        user = await _update(state, _load(state, USER, request), envelope(body, "user"))
    return _answer(request, user, 200)


async def create_or_update(api: Api, request: Request, state: SandboxState) -> Response:
    """Match ``external_id`` first, then the email; 201 when created, 200 when updated."""
    body = await read_json(request)
    data = envelope(body, "user")
    async with api.write_lock:
        match = None
        external_id, email = data.get("external_id"), data.get("email")
        if isinstance(external_id, str) and external_id:
            match = next(
                (u for u in state.store.iter(USER) if u["external_id"] == external_id), None
            )
        if match is None and isinstance(email, str) and email:
            lowered = email.lower()
            match = next(
                (u for u in state.store.iter(USER) if (u["email"] or "").lower() == lowered), None
            )
        if match is None:
            user, status = await _create(state, data), 201
        else:
            user, status = await _update(state, match, data), 200
    return _answer(request, user, status)


async def list_sla_policies(api: Api, request: Request, state: SandboxState) -> Response:
    base = base_url(request)
    policies = sorted(state.store.all(SLA), key=lambda p: int(p["position"]))
    return json_response(
        {
            "sla_policies": [render(SLA, p, base) for p in policies],
            "next_page": None,
            "previous_page": None,
            "count": len(policies),
        }
    )


async def get_sla_policy(api: Api, request: Request, state: SandboxState) -> Response:
    policy = _load(state, SLA, request)
    return json_response({"sla_policy": render(SLA, policy, base_url(request))})


ROUTES = (
    ("/users/me", me, "GET"),
    ("/users", list_users, "GET"),
    ("/users", create_user, "POST"),
    ("/users/create_or_update", create_or_update, "POST"),
    ("/users/{id:int}", get_user, "GET"),
    ("/users/{id:int}", update_user, "PUT"),
    ("/slas/policies", list_sla_policies, "GET"),
    ("/slas/policies/{id:int}", get_sla_policy, "GET"),
)
