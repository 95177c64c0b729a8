"""Query limits checked before anything runs: depth, aliases, cost, introspection.

``analyze`` walks the one operation a request will execute, expanding fragments once each
(memoized, so a fragment bomb costs the analysis no more than the document's size), and
estimates its cost: every field with a selection (an object or a list of them) costs 1,
scalar fields cost nothing beyond their object, and a field's selection is multiplied by the
list size it asks for (``first``/``last`` from literals or variables; a list field without
one counts as ``default_list_size``; the ``edges``/``nodes`` of a connection count once,
since their connection field already multiplied). Token count is enforced by the parser
(``max_tokens``) and body size and batch size by the HTTP layer; all answer
``QUERY_TOO_COMPLEX``.

Introspection (``__schema``, ``__type``) is measured on its own: standard introspection
queries (graphql-core's ``get_introspection_query()``, GraphiQL's) nest deeper than
``max_depth`` and fan out over every type, so their selections count toward neither depth
nor cost. What bounds them instead is their shape: at most ``max_introspection_lists``
list fields along any path (``types { fields { args } }`` is 3: what the standard queries
need) and at most ``max_introspection_of_type`` ``ofType`` levels (the standard queries
use 7 to 9). Anything deeper (fields of fields, ofType towers) is an introspection bomb
and answers ``QUERY_TOO_COMPLEX``; aliases count toward ``max_aliases`` everywhere, so
an alias fan-out is refused as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)

from gateway.governance.clients import Client, QueryLimits
from gateway.graphql.errors import CodedError, ErrorCode

__all__ = ["Analysis", "analyze", "check_limits"]

_INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})
_PAGE_ARGS = ("first", "last")
_MAX_MULTIPLIER = 1_000_000
#: introspection fields that return lists (of types, fields, arguments, ...)
_INTROSPECTION_LISTS = frozenset(
    {"types", "fields", "inputFields", "interfaces", "possibleTypes", "enumValues", "args"}
)
_INTROSPECTION_LISTS |= {"directives", "locations"}


@dataclass(frozen=True, slots=True)
class Analysis:
    """What an operation would do: nesting depth, aliases, estimated cost, introspection."""

    depth: int
    aliases: int
    cost: int
    introspection: bool
    #: the most introspection list fields along one path (types > fields > args: 3)
    introspection_lists: int = 0
    #: the most ``ofType`` levels along one introspection path
    introspection_of_type: int = 0


class _Walker:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
        default_list_size: int,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.default_list_size = default_list_size
        self.introspection = False
        self.introspection_lists = 0
        self.introspection_of_type = 0
        self._memo: dict[str, tuple[int, int, int]] = {}
        self._active: set[str] = set()
        self._shape_memo: dict[str, tuple[int, int, int]] = {}
        self._shape_active: set[str] = set()

    def selection_set(
        self, node: SelectionSetNode, parent: GraphQLNamedType | None
    ) -> tuple[int, int, int]:
        depth = aliases = cost = 0
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                d, a, c = self.field(selection, parent)
                depth = max(depth, d)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                d, a, c = self.selection_set(selection.selection_set, target)
                depth = max(depth, d)
            elif isinstance(selection, FragmentSpreadNode):
                d, a, c = self.spread(selection.name.value)
                depth = max(depth, d)
            else:  # pragma: no cover - graphql-core has no other selection kinds
                continue
            aliases += a
            cost += c
        return depth, aliases, cost

    def spread(self, name: str) -> tuple[int, int, int]:
        if name in self._memo:
            return self._memo[name]
        fragment = self.fragments.get(name)
        if fragment is None or name in self._active:
            return 0, 0, 0  # unknown or cyclic: validation reports it
        self._active.add(name)
        target = self.schema.get_type(fragment.type_condition.name.value)
        result = self.selection_set(fragment.selection_set, target)
        self._active.discard(name)
        self._memo[name] = result
        return result

    def field(self, node: FieldNode, parent: GraphQLNamedType | None) -> tuple[int, int, int]:
        aliases = 1 if node.alias else 0
        name = node.name.value
        if name in _INTROSPECTION_ROOTS:
            self.introspection = True
            lists, of_type, inner_aliases = (
                self.shape(node.selection_set) if node.selection_set else (0, 0, 0)
            )
            self.introspection_lists = max(self.introspection_lists, lists)
            self.introspection_of_type = max(self.introspection_of_type, of_type)
            # measured by its shape instead: one level, one unit of cost
            return 1, aliases + inner_aliases, 1
        definition: GraphQLField | None = None
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            definition = parent.fields.get(name)
        if node.selection_set is None:
            # scalars ride along with their object: tokens and aliases bound their number
            return 1, aliases, 0
        child = get_named_type(definition.type) if definition else None
        d, a, c = self.selection_set(node.selection_set, child)
        multiplier = self.multiplier(node, definition, parent)
        return d + 1, aliases + a, 1 + multiplier * c

    def shape(self, node: SelectionSetNode) -> tuple[int, int, int]:
        """(list fields, ofType levels, aliases) at most along one path of an
        introspection selection; fragments are measured once each."""
        lists = of_type = aliases = 0
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                name = selection.name.value
                if selection.alias:
                    aliases += 1
                if selection.selection_set is None:
                    continue
                sub_lists, sub_of_type, sub_aliases = self.shape(selection.selection_set)
                sub_lists += 1 if name in _INTROSPECTION_LISTS else 0
                sub_of_type += 1 if name == "ofType" else 0
            elif isinstance(selection, InlineFragmentNode):
                sub_lists, sub_of_type, sub_aliases = self.shape(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                sub_lists, sub_of_type, sub_aliases = self.shape_spread(selection.name.value)
            else:  # pragma: no cover - graphql-core has no other selection kinds
                continue
            lists = max(lists, sub_lists)
            of_type = max(of_type, sub_of_type)
            aliases += sub_aliases
        return lists, of_type, aliases

    def shape_spread(self, name: str) -> tuple[int, int, int]:
        if name in self._shape_memo:
            return self._shape_memo[name]
        fragment = self.fragments.get(name)
        if fragment is None or name in self._shape_active:
            return 0, 0, 0  # unknown or cyclic: validation reports it
        self._shape_active.add(name)
        result = self.shape(fragment.selection_set)
        self._shape_active.discard(name)
        self._shape_memo[name] = result
        return result

    def multiplier(
        self, node: FieldNode, definition: GraphQLField | None, parent: GraphQLNamedType | None
    ) -> int:
        for argument in node.arguments or ():
            if argument.name.value in _PAGE_ARGS:
                value: Any = None
                if isinstance(argument.value, IntValueNode):
                    value = int(argument.value.value)
                elif isinstance(argument.value, VariableNode):
                    value = self.variables.get(argument.value.name.value)
                if isinstance(value, int) and not isinstance(value, bool):
                    # capped: a page size of 10**20 is refused for cost all the same, and
                    # the figure must still fit the JSON answer's 64-bit integers
                    return min(max(1, value), _MAX_MULTIPLIER)
                return self.default_list_size
        if definition is None:
            return 1
        of_type = definition.type
        if isinstance(of_type, GraphQLNonNull):
            of_type = of_type.of_type
        if not isinstance(of_type, GraphQLList):
            return 1
        if (
            parent is not None
            and parent.name.endswith("Connection")
            and node.name.value in ("edges", "nodes")
        ):
            return 1
        return self.default_list_size


def analyze(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
    *,
    default_list_size: int = 20,
) -> Analysis:
    """Measure ``operation`` of ``document`` against ``schema`` (before validation is fine)."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    walker = _Walker(schema, fragments, variables or {}, default_list_size)
    root = schema.get_root_type(operation.operation)
    depth, aliases, cost = walker.selection_set(operation.selection_set, root)
    return Analysis(
        depth=depth,
        aliases=aliases,
        cost=cost,
        introspection=walker.introspection,
        introspection_lists=walker.introspection_lists,
        introspection_of_type=walker.introspection_of_type,
    )


def _too_complex(message: str, **extensions: Any) -> CodedError:
    return CodedError(ErrorCode.QUERY_TOO_COMPLEX, message, extensions=extensions)


def check_limits(analysis: Analysis, limits: QueryLimits, client: Client) -> None:
    """Raise QUERY_TOO_COMPLEX (or FORBIDDEN for introspection) if the operation may not run."""
    if analysis.depth > limits.max_depth:
        raise _too_complex(
            f"Query depth {analysis.depth} exceeds the limit of {limits.max_depth}; "
            "ask for less nesting.",
            limit="depth",
            value=analysis.depth,
            max=limits.max_depth,
        )
    if analysis.aliases > limits.max_aliases:
        raise _too_complex(
            f"Query uses {analysis.aliases} aliases, more than the limit of "
            f"{limits.max_aliases}; batch ids through list fields instead.",
            limit="aliases",
            value=analysis.aliases,
            max=limits.max_aliases,
        )
    if analysis.cost > limits.max_cost:
        raise _too_complex(
            f"Estimated query cost {analysis.cost} exceeds the limit of {limits.max_cost}; "
            "ask for smaller pages (first:) or fewer nested lists.",
            limit="cost",
            value=analysis.cost,
            max=limits.max_cost,
        )
    if analysis.introspection_lists > limits.max_introspection_lists:
        raise _too_complex(
            f"Introspection nests {analysis.introspection_lists} lists (types, fields, "
            f"args ...), more than the limit of {limits.max_introspection_lists}; the "
            "standard introspection query needs 3.",
            limit="introspection_lists",
            value=analysis.introspection_lists,
            max=limits.max_introspection_lists,
        )
    if analysis.introspection_of_type > limits.max_introspection_of_type:
        raise _too_complex(
            f"Introspection nests {analysis.introspection_of_type} ofType levels, more than "
            f"the limit of {limits.max_introspection_of_type}.",
            limit="introspection_of_type",
            value=analysis.introspection_of_type,
            max=limits.max_introspection_of_type,
        )
    if analysis.introspection and not client.introspection:
        raise CodedError(
            ErrorCode.FORBIDDEN,
            f"Client '{client.id}' may not introspect the schema; "
            "enable 'introspection' for it in policies/clients.toml.",
        )
