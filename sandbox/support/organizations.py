"""Organization endpoints: CRUD, show_many, create_or_update, search and autocomplete.

An organization carries the customer's ERP key in ``external_id`` and its support
entitlement in ``organization_fields``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.app import SandboxState
from sandbox.docstore import Doc

from .api import Api, base_url
from .events import organization_events
from .paging import paginate
from .validate import ORGANIZATION_FIELDS, clean_organization, envelope, parse_ids
from .wire import bad_request, json_response, not_found, now_iso, read_json
from .world import ORG, find_organizations, next_id, render

__all__ = ["ROUTES"]


def _list_body(request: Request, records: list[Doc]) -> dict[str, Any]:
    base = base_url(request)
    return {
        "organizations": [render(ORG, d, base) for d in records],
        "next_page": None,
        "previous_page": None,
        "count": len(records),
    }


def _load(state: SandboxState, request: Request) -> Doc:
    doc = state.store.get(ORG, str(request.path_params["id"]))
    if doc is None:
        raise not_found()
    return doc


async def list_organizations(api: Api, request: Request, state: SandboxState) -> Response:
    base = base_url(request)
    records = state.store.all(ORG)
    return json_response(
        paginate(request, records, "organizations", lambda d: render(ORG, d, base))
    )


async def get_organization(api: Api, request: Request, state: SandboxState) -> Response:
    return json_response({"organization": render(ORG, _load(state, request), base_url(request))})


async def show_many(api: Api, request: Request, state: SandboxState) -> Response:
    params = request.query_params
    if "external_ids" in params:
        wanted = [p.strip() for p in params["external_ids"].split(",") if p.strip()]
        if not wanted or len(wanted) > 100:
            raise bad_request("InvalidValue", "'external_ids' takes 1 to 100 values")
        by_key = {o["external_id"]: o for o in state.store.iter(ORG) if o["external_id"]}
        found = [by_key.get(k) for k in wanted]
    else:
        found = [state.store.get(ORG, str(i)) for i in parse_ids(params.get("ids"))]
    return json_response(_list_body(request, [d for d in found if d is not None]))


async def search(api: Api, request: Request, state: SandboxState) -> Response:
    params = request.query_params
    if "external_id" in params:
        value = params["external_id"]
        found = find_organizations(state, "external_id", value)
    elif "name" in params:
        name = params["name"].strip().lower()
        found = find_organizations(state, "name", name)
    else:
        raise bad_request("InvalidValue", "Search needs 'external_id' or 'name'")
    return json_response(_list_body(request, found))


async def autocomplete(api: Api, request: Request, state: SandboxState) -> Response:
    text = request.query_params.get("name", "").strip().lower()
    if len(text) < 2:
        raise bad_request("InvalidValue", "'name' needs at least 2 characters")

    def matches(name: str) -> bool:
        name = name.lower()
        return name.startswith(text) or any(word.startswith(text) for word in name.split())

    found = [o for o in state.store.iter(ORG) if matches(o["name"])]
    base = base_url(request)
    return json_response(paginate(request, found, "organizations", lambda d: render(ORG, d, base)))


def _blank(org_id: int, stamp: str) -> Doc:
    return {
        "id": org_id,
        "external_id": None,
        "name": "",
        "domain_names": [],
        "details": "",
        "notes": "",
        "group_id": None,
        "shared_tickets": False,
        "shared_comments": False,
        "tags": [],
        "organization_fields": dict.fromkeys(ORGANIZATION_FIELDS),
        "created_at": stamp,
        "updated_at": stamp,
    }


async def _create(state: SandboxState, data: dict[str, Any]) -> tuple[Doc | None, Doc]:
    fields = clean_organization(state, data, None)
    stamp = now_iso()
    org = {**_blank(await next_id(state, ORG), stamp), **fields}
    await state.store.put(ORG, str(org["id"]), org)
    return None, org


async def _update(state: SandboxState, current: Doc, data: dict[str, Any]) -> tuple[Doc, Doc]:
    fields = clean_organization(state, data, current)
    updated = {**current, **fields, "updated_at": now_iso()}
    await state.store.put(ORG, str(updated["id"]), updated)
    return current, updated


def _answer(
    request: Request, state: SandboxState, before: Doc | None, after: Doc, status: int
) -> Response:
    if state.webhooks.enabled:
        for event in organization_events(before, after):
            state.webhooks.publish(event)
    rendered = render(ORG, after, base_url(request))
    headers = {"Location": rendered["url"]} if status == 201 else None
    return json_response({"organization": rendered}, status, headers)


async def create_organization(api: Api, request: Request, state: SandboxState) -> Response:
    body = await read_json(request)
    # the id drawn and the record: one commit
    async with api.write_lock, state.store.batch():
        before, after = await _create(state, envelope(body, "organization"))
    return _answer(request, state, before, after, 201)


async def update_organization(api: Api, request: Request, state: SandboxState) -> Response:
    body = await read_json(request)
    async with api.write_lock:
        current = _load(state, request)
        before, after = await _update(state, current, envelope(body, "organization"))
    return _answer(request, state, before, after, 200)


async def create_or_update(api: Api, request: Request, state: SandboxState) -> Response:
    """Match ``external_id`` first, then the name; 201 when created, 200 when updated."""
    body = await read_json(request)
    data = envelope(body, "organization")
    # a creation's id drawn and its record: one commit
    async with api.write_lock, state.store.batch():
        match = None
        external_id = data.get("external_id")
        if isinstance(external_id, str | int) and not isinstance(external_id, bool):
            key = str(external_id)
            match = next(iter(find_organizations(state, "external_id", key)), None)
        name = data.get("name")
        if match is None and isinstance(name, str) and name.strip():
            lowered = name.strip().lower()
            match = next(iter(find_organizations(state, "name", lowered)), None)
        if match is None:
            before, after = await _create(state, data)
            status = 201
        else:
            before, after = await _update(state, match, data)
            status = 200
    return _answer(request, state, before, after, status)


ROUTES = (
    ("/organizations", list_organizations, "GET"),
    ("/organizations", create_organization, "POST"),
    ("/organizations/show_many", show_many, "GET"),
    ("/organizations/search", search, "GET"),
    ("/organizations/autocomplete", autocomplete, "GET"),
    ("/organizations/create_or_update", create_or_update, "POST"),
    ("/organizations/{id:int}", get_organization, "GET"),
    ("/organizations/{id:int}", update_organization, "PUT"),
)
