"""Zendesk's two pagination styles over one list of records ordered by id.

Cursor pagination (``page[size]``, ``page[after]``, ``page[before]``) answers
``{"<key>": [...], "meta": {"has_more", "after_cursor", "before_cursor"},
"links": {"next", "prev"}}`` with opaque cursors; it is used whenever a ``page[...]``
parameter is present. Without one, Zendesk's older offset style answers
(``page``, ``per_page`` -> ``next_page``, ``previous_page``, ``count``), as the real API
still does for clients that never asked for cursors.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from sandbox.docstore import Doc

from .wire import bad_request

__all__ = ["MAX_PAGE", "decode_cursor", "encode_cursor", "paginate"]

MAX_PAGE = 100


def encode_cursor(record_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{record_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    prefix, _, number = text.partition(":")
    if prefix != "id" or not number.isdigit() or len(number) > 18:
        raise bad_request(
            "InvalidPaginationParameter", "page[after]/page[before] is not a valid cursor"
        )
    return int(number)


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise bad_request("InvalidPaginationParameter", f"{name} must be a positive integer")
    return int(raw)


#: what offset pagination sorts by
SORTABLE = frozenset({"created_at", "updated_at", "id"})


def paginate(
    request: Request, records: list[Doc], key: str, render: Callable[[Doc], dict[str, Any]]
) -> dict[str, Any]:
    """One page of ``records`` (any order in; ordered by id out) as Zendesk answers it.

    Offset pagination also takes Zendesk's ``sort_by`` (``created_at``, ``updated_at``,
    ``id``) and ``sort_order`` (``asc``, ``desc``)."""
    ordered = sorted(records, key=lambda d: int(d["id"]))
    params = request.query_params
    if any(name.startswith("page[") for name in params):
        return _cursor_page(request, ordered, key, render)
    sort_by = params.get("sort_by")
    if sort_by is not None:
        if sort_by not in SORTABLE:
            raise bad_request(
                "InvalidValue", f"sort_by must be one of {', '.join(sorted(SORTABLE))}"
            )
        order = params.get("sort_order", "asc")
        if order not in ("asc", "desc"):
            raise bad_request("InvalidValue", "sort_order must be asc or desc")
        if sort_by != "id":  # ISO times sort as text; ties by id
            ordered.sort(key=lambda d: (str(d.get(sort_by) or ""), int(d["id"])))
        if order == "desc":
            ordered.reverse()
    per_page = min(_int_param(request, "per_page", MAX_PAGE), MAX_PAGE)
    page = _int_param(request, "page", 1)
    chunk = ordered[(page - 1) * per_page : page * per_page]
    more = page * per_page < len(ordered)
    url = request.url.remove_query_params("page")
    return {
        key: [render(d) for d in chunk],
        "next_page": str(url.include_query_params(page=page + 1)) if more else None,
        "previous_page": str(url.include_query_params(page=page - 1)) if page > 1 else None,
        "count": len(ordered),
    }


def _cursor_page(
    request: Request, ordered: list[Doc], key: str, render: Callable[[Doc], dict[str, Any]]
) -> dict[str, Any]:
    size = _int_param(request, "page[size]", MAX_PAGE)
    if size > MAX_PAGE:
        raise bad_request(
            "InvalidPaginationParameter",
            f"page[size] is greater than the maximum allowed value of {MAX_PAGE}",
        )
    after = request.query_params.get("page[after]")
    before = request.query_params.get("page[before]")
    if after is not None and before is not None:
        raise bad_request("InvalidPaginationParameter", "use page[after] or page[before], not both")
    if before is not None:
        limit = decode_cursor(before)
        earlier = [d for d in ordered if int(d["id"]) < limit]
        chunk = earlier[-size:]
        has_more = len(earlier) > size
    else:
        start = decode_cursor(after) if after is not None else None
        later = ordered if start is None else [d for d in ordered if int(d["id"]) > start]
        chunk = later[:size]
        has_more = len(later) > size
    after_cursor = encode_cursor(int(chunk[-1]["id"])) if chunk else None
    before_cursor = encode_cursor(int(chunk[0]["id"])) if chunk else None
    url = request.url.remove_query_params(["page[after]", "page[before]"])
    # walking forward, "next" exists while there is more and "prev" once past the start;
    # walking backward (page[before]) it is the other way round
    backward = before is not None
    more_next = has_more if not backward else bool(chunk)
    more_prev = has_more if backward else bool(chunk) and after is not None
    next_link = prev_link = None
    if after_cursor is not None and more_next:
        next_link = str(url.include_query_params(**{"page[after]": after_cursor}))
    if before_cursor is not None and more_prev:
        prev_link = str(url.include_query_params(**{"page[before]": before_cursor}))
    return {
        key: [render(d) for d in chunk],
        "meta": {
            "has_more": has_more,
            "after_cursor": after_cursor,
            "before_cursor": before_cursor,
        },
        "links": {"next": next_link, "prev": prev_link},
    }
