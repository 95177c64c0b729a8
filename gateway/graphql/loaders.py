"""Per-request DataLoaders: batch the reads of one GraphQL request into few upstream calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.graphql.context import Context

__all__ = ["Loaders"]


class Loaders:
    """The DataLoaders of one request."""

    def __init__(self, context: Context) -> None:
        self.context = context
