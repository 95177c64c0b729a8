"""Lists as Relay connections: pages with offset cursors, built from in-memory lists.

``paginate`` slices a list into a ``Connection`` page; its edges and page info are built
only when the query asks for them. Cursors are opaque (``encode_cursor``), tied to the
list they came from: a cursor of another list answers ``VALIDATION_FAILED``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any, Generic, TypeVar, cast

import strawberry

from gateway.graphql.errors import CodedError, ErrorCode

__all__ = [
    "MAX_PAGE_SIZE",
    "Connection",
    "Edge",
    "PageInfo",
    "check_first",
    "decode_cursor",
    "encode_cursor",
    "matches",
    "paginate",
]

T = TypeVar("T")

#: the largest page a list field answers
MAX_PAGE_SIZE = 100

field = strawberry.field


@strawberry.type(description="Where a page of a connection sits in the whole list (Relay).")
class PageInfo:
    has_next_page: bool = field(description="Whether more items follow this page.")
    has_previous_page: bool = field(description="Whether items come before this page.")
    start_cursor: str | None = field(description="Cursor of the first item of this page.")
    end_cursor: str | None = field(
        description="Cursor of the last item of this page: pass it as `after` for the next."
    )


@strawberry.type(description="One item of a page with its cursor (Relay).")
class Edge(Generic[T]):
    cursor: str = field(description="Opaque position of this item, for `after`.")
    node: T = field(description="The item.")


@strawberry.type(description="A page of a list (Relay connection).")
class Connection(Generic[T]):
    edges: list[Edge[T]] = field(description="The items of this page with their cursors.")
    nodes: list[T] = field(description="The items of this page, without cursors.")
    page_info: PageInfo = field(description="Paging information.")
    total_count: int | None = field(
        description="Items in the whole list after filtering; null when it cannot be known "
        "without reading everything."
    )
    stale: bool = field(
        default=False,
        description="True when the items come from the last-known-good cache because their "
        "system did not answer; `ageSeconds` says how old they are.",
    )
    age_seconds: float | None = field(
        default=None, description="Age of stale items in seconds; null when fresh."
    )


def encode_cursor(kind: str, position: str | int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str) -> str:
    """The position inside a cursor made by ``encode_cursor(kind, ...)``; else VALIDATION_FAILED."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    prefix, _, position = text.partition(":")
    if prefix != kind or not position:
        raise CodedError(
            ErrorCode.VALIDATION_FAILED,
            f"Cursor {cursor[:40]!r} is not a cursor of this list; pass an endCursor it returned.",
            extensions={"argument": "after"},
        )
    return position


def check_first(first: int) -> None:
    if first < 0 or first > MAX_PAGE_SIZE:
        raise CodedError(
            ErrorCode.VALIDATION_FAILED,
            f"first must be between 0 and {MAX_PAGE_SIZE}, got {first}.",
            extensions={"argument": "first"},
        )


def paginate(
    items: Sequence[T],
    first: int,
    after: str | None,
    *,
    kind: str,
    stale: bool = False,
    age_seconds: float | None = None,
) -> Connection[T]:
    """Slice an in-memory list into a page with offset cursors."""
    check_first(first)
    start = 0
    if after is not None:
        position = decode_cursor(after, kind)
        if not position.isdigit():
            raise CodedError(ErrorCode.VALIDATION_FAILED, "Malformed cursor.")
        start = int(position) + 1
    page = items[start : start + first]
    return cast(
        Connection[T],
        _Page(list(page), start, len(items), kind, stale=stale, age_seconds=age_seconds),
    )


class _Page:
    """A ``Connection`` page whose edges and page info are made only if the query asks.

    GraphQL reads a connection's fields by attribute, so this stands in for the strawberry
    type: a query that selects ``nodes`` alone (the common portal query) then costs no
    cursor encoding and no ``Edge`` per item.
    """

    __slots__ = ("_edges", "_kind", "_start", "age_seconds", "nodes", "stale", "total_count")

    def __init__(
        self,
        nodes: list[Any],
        start: int,
        total_count: int,
        kind: str,
        *,
        stale: bool,
        age_seconds: float | None,
    ) -> None:
        self.nodes = nodes
        self.total_count = total_count
        self.stale = stale
        self.age_seconds = age_seconds
        self._start = start
        self._kind = kind
        self._edges: list[Edge[Any]] | None = None

    @property
    def edges(self) -> list[Edge[Any]]:
        if self._edges is None:
            start, kind = self._start, self._kind
            self._edges = [
                Edge(cursor=encode_cursor(kind, start + i), node=n)
                for i, n in enumerate(self.nodes)
            ]
        return self._edges

    @property
    def page_info(self) -> PageInfo:
        start, count = self._start, len(self.nodes)
        return PageInfo(
            has_next_page=start + count < self.total_count,
            has_previous_page=start > 0,
            start_cursor=encode_cursor(self._kind, start) if count else None,
            end_cursor=encode_cursor(self._kind, start + count - 1) if count else None,
        )


def matches(status: str, wanted: list[str] | None) -> bool:
    return wanted is None or status.lower() in {w.lower() for w in wanted}
