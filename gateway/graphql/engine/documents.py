"""Parsed and validated documents by query text, kept in a bounded LRU.

A portal sends the same few documents again and again, and parsing plus validating is
most of the CPU a small query costs. A document over the token limit is refused
``QUERY_TOO_COMPLEX`` while parsing, before it is built whole.
"""

from __future__ import annotations

from collections import OrderedDict

from graphql import DocumentNode, GraphQLError, GraphQLSchema, parse, validate

from gateway.governance.clients import QueryLimits
from gateway.graphql.errors import CodedError, ErrorCode

__all__ = ["DocumentCache"]


class DocumentCache:
    """query text -> (document or syntax error, validation errors), bounded LRU."""

    def __init__(self, schema: GraphQLSchema, limits: QueryLimits, capacity: int) -> None:
        self.schema = schema
        self.limits = limits
        self.capacity = capacity
        self._parsed: OrderedDict[str, DocumentNode | GraphQLError] = OrderedDict()
        self._validated: dict[int, list[GraphQLError]] = {}

    def parse(self, query: str) -> DocumentNode | GraphQLError:
        cached = self._parsed.get(query)
        if cached is not None:
            self._parsed.move_to_end(query)
            return cached
        try:
            result: DocumentNode | GraphQLError = parse(query, max_tokens=self.limits.max_tokens)
        except GraphQLError as exc:
            if "tokens" in exc.message:
                exc = CodedError(
                    ErrorCode.QUERY_TOO_COMPLEX,
                    f"The document has more than {self.limits.max_tokens} tokens; "
                    "send a smaller query.",
                    extensions={"limit": "tokens", "max": self.limits.max_tokens},
                )
            result = exc
        self._parsed[query] = result
        if len(self._parsed) > self.capacity:
            _, evicted = self._parsed.popitem(last=False)
            self._validated.pop(id(evicted), None)
        return result

    def validate(self, document: DocumentNode) -> list[GraphQLError]:
        errors = self._validated.get(id(document))
        if errors is None:
            errors = validate(self.schema, document)
            self._validated[id(document)] = errors
        return errors
