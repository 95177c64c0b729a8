"""Incremental exports: ``/incremental/tickets/cursor`` and ``/incremental/organizations``.

As Zendesk documents them: items come in ``updated_at`` order (then id); items changed in
the minute before the request are left out, so that a later export starting where this
one ended misses nothing that was still being written. Deleted tickets stay in the
ticket stream with ``"status": "deleted"`` (``delete_ticket`` keeps them in
``DELETED_TICKET``). These endpoints have a rate limit of their own (10 requests a minute
on Zendesk), which ``create_app`` wires in.

- cursor-based (tickets): ``?start_time=<unix>`` or ``?cursor=<after_cursor>``,
  ``per_page`` up to 1000; the cursor holds the last item's (``updated_at``, id), so a
  restart from any ``after_cursor`` yields no gap and no duplicate;
- time-based (organizations): ``?start_time=<unix>``, ``per_page`` up to 1000;
  ``end_time`` is the last item's ``updated_at``, the next page starts there (items of
  that second may come twice, as Zendesk warns) and a page never splits one second.
"""

from __future__ import annotations

import base64
import binascii
import time
from datetime import datetime
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from sandbox.app import SandboxState
from sandbox.docstore import Doc

from .api import Api, base_url
from .wire import ZendeskError, bad_request, json_response
from .world import DELETED_TICKET, ORG, TICKET, render

__all__ = ["ROUTES"]

MAX_PER_PAGE = 1000
#: changes younger than this are not exported yet (Zendesk: one minute)
SETTLE_SECONDS = 60


def _now() -> float:
    return time.time()


def _unix(stamp: str) -> int:
    return int(datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z").timestamp())


def _start_time(request: Request, now: int) -> int:
    raw = request.query_params.get("start_time")
    if raw is None or raw == "":
        raise bad_request("InvalidValue", "start_time is required (a Unix epoch time in seconds)")
    if not raw.isdigit() or len(raw) > 12:
        raise bad_request("InvalidValue", f"start_time must be a Unix epoch time, not {raw!r}")
    value = int(raw)
    if value > now - SETTLE_SECONDS:
        raise ZendeskError(
            422,
            {
                "error": "InvalidValue",
                "description": "Too recent start_time. Use a start_time older than 1 minute.",
            },
        )
    return value


def _per_page(request: Request) -> int:
    raw = request.query_params.get("per_page", str(MAX_PER_PAGE))
    if not raw.isdigit() or int(raw) < 1:
        raise bad_request("InvalidValue", f"per_page must be a number from 1 to 1000, not {raw!r}")
    return min(int(raw), MAX_PER_PAGE)


def _encode(position: tuple[int, int]) -> str:
    text = f"t:{position[0]}:{position[1]}".encode()
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def _decode(cursor: str) -> tuple[int, int]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    parts = text.split(":")
    if (
        len(parts) != 3
        or parts[0] != "t"
        or not all(p.isdigit() and len(p) < 19 for p in parts[1:])
    ):
        raise bad_request("InvalidCursor", "cursor is not one this API handed out")
    return int(parts[1]), int(parts[2])


def _stream(state: SandboxState, kinds: tuple[str, ...], cutoff: int) -> list[tuple[int, int, Doc]]:
    """Every settled item of ``kinds`` as (updated_at unix, id, doc), in export order."""
    items = [
        (moment, int(doc["id"]), doc)
        for kind in kinds
        for doc in state.store.iter(kind)
        if (moment := _unix(doc["updated_at"])) <= cutoff
    ]
    items.sort(key=lambda item: (item[0], item[1]))
    return items


async def tickets_cursor(api: Api, request: Request, state: SandboxState) -> Response:
    now = int(_now())
    cursor = request.query_params.get("cursor")
    # the position is exclusive: start_time T starts just before (T, id 0)
    position = _decode(cursor) if cursor else (_start_time(request, now), 0)
    per_page = _per_page(request)
    cutoff = now - SETTLE_SECONDS
    rest = [
        item
        for item in _stream(state, (TICKET, DELETED_TICKET), cutoff)
        if (item[0], item[1]) > position
    ]
    page = rest[:per_page]
    if page:
        position = (page[-1][0], page[-1][1])
    after = _encode(position)
    base = base_url(request)
    query = {"cursor": after}
    if "per_page" in request.query_params:
        query["per_page"] = str(per_page)
    return json_response(
        {
            "tickets": [render(TICKET, doc, base) for _, _, doc in page],
            "after_cursor": after,
            "after_url": f"{base}/api/v2/incremental/tickets/cursor.json?{urlencode(query)}",
            "before_cursor": None,
            "before_url": None,
            "end_of_stream": len(rest) <= per_page,
        }
    )


async def organizations_time(api: Api, request: Request, state: SandboxState) -> Response:
    now = int(_now())
    start = _start_time(request, now)
    per_page = _per_page(request)
    cutoff = now - SETTLE_SECONDS
    rest = [item for item in _stream(state, (ORG,), cutoff) if item[0] >= start]
    page = rest[:per_page]
    if page and len(rest) > per_page:
        # a page never ends inside one second: the next one starts at that second
        last = page[-1][0]
        page.extend(item for item in rest[per_page:] if item[0] == last)
    end_of_stream = len(page) == len(rest)
    end_time = page[-1][0] if page else start
    base = base_url(request)
    next_page = None
    if not end_of_stream:
        query = {"start_time": str(end_time)}
        if "per_page" in request.query_params:
            query["per_page"] = str(per_page)
        next_page = f"{base}/api/v2/incremental/organizations.json?{urlencode(query)}"
    return json_response(
        {
            "organizations": [render(ORG, doc, base) for _, _, doc in page],
            "next_page": next_page,
            "end_time": end_time,
            "end_of_stream": end_of_stream,
            "count": len(page),
        }
    )


ROUTES = (
    ("/incremental/tickets/cursor", tickets_cursor, "GET"),
    ("/incremental/organizations", organizations_time, "GET"),
)
