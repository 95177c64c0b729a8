"""The executor the operation runner hands to graphql-core: strawberry's, made lean.

Two costs of the stock executor show on every read, and neither buys anything here:

- **A reference cycle per operation.** graphql-core keeps bound methods of the executor
  on the executor itself (``async_helpers``), so an executor, and everything it holds
  (the context, the request, every field group of the document), outlives its operation
  until the cyclic garbage collector finds it. Under load that made the collector walk
  tens of thousands of objects again and again. The helpers here reach the executor
  through a weak reference: an answered operation is freed at once.
- **The full resolver protocol for plain attribute fields.** A field without a
  resolver, arguments or extensions (``Case.subject``, ``GoldenRecord.country``) only
  reads an attribute of its parent; strawberry's default resolver then does exactly
  ``getattr(parent, python_name)``. graphql-core still builds a resolve-info object per
  field and value, and strawberry calls through two layers to reach ``getattr``. Leaf
  fields of that kind (scalars and enums, the bulk of a customer 360) are read and
  coerced here directly, with the same null checks and field errors; every other field
  takes the stock path.

Permissions are not bypassed: scope checks live in the resolvers (``require_scope``),
and a field with a resolver, arguments, strawberry extensions or permission classes is
never plain.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Sequence
from typing import Any, NamedTuple

from graphql import (
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Path, Undefined
from graphql.type.definition import GraphQLResolveInfoHelpers
from strawberry import Schema
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

__all__ = ["PlainField", "executor_class", "plain_fields"]


class PlainField(NamedTuple):
    """A leaf field answered by reading one attribute of its parent."""

    attribute: str
    #: the field's type as declared (maybe non-null), for field errors
    type: GraphQLOutputType
    #: the scalar or enum type, without its non-null wrapper
    leaf: GraphQLLeafType
    non_null: bool


def plain_fields(schema: Schema) -> dict[tuple[str, str], PlainField]:
    """(object type name, field name) -> how to read it, for every plain leaf field."""
    if schema.config.default_resolver is not getattr:
        return {}  # a custom default resolver must see every field
    if getattr(schema, "_extensions", None) or getattr(schema, "extensions", None):
        return {}  # schema extensions may wrap every resolver
    graphql_schema: GraphQLSchema = schema._schema
    plain: dict[tuple[str, str], PlainField] = {}
    for type_name, graphql_type in graphql_schema.type_map.items():
        if not isinstance(graphql_type, GraphQLObjectType) or type_name.startswith("__"):
            continue
        for field_name, field in graphql_type.fields.items():
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if not isinstance(definition, StrawberryField) or field.args:
                continue
            if not definition.is_basic_field or definition.permission_classes:
                continue
            if getattr(field.resolve, "_is_default", False) is not True:
                continue  # exception handlers or other wrapping: keep strawberry's resolver
            field_type = field.type
            non_null = isinstance(field_type, GraphQLNonNull)
            leaf = field_type.of_type if non_null else field_type
            if is_leaf_type(leaf):
                plain[type_name, field_name] = PlainField(
                    definition.python_name, field_type, leaf, non_null
                )
    return plain


def _weak_helpers(executor: Any) -> GraphQLResolveInfoHelpers:
    """``async_helpers`` that reach ``executor`` through a weak reference (no cycle)."""
    ref = weakref.ref(executor)

    def gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
        return _alive(ref).gather_async_work(values)  # type: ignore[no-any-return]

    def track(values: Sequence[Any]) -> None:
        _alive(ref).track_async_work(values)

    return GraphQLResolveInfoHelpers(gather=gather, track=track)


def _alive(ref: weakref.ref[Any]) -> Any:
    executor = ref()
    if executor is None:
        raise RuntimeError("This operation has finished: its async helpers can no longer run.")
    return executor


def executor_class(schema: Schema) -> type[Any]:
    """strawberry's execution context class for ``schema``, with the two changes above."""
    base: type[Any] = schema.execution_context_class
    plain = plain_fields(schema)

    class LeanExecutor(base):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.async_helpers = _weak_helpers(self)

        def execute_field(
            self,
            parent_type: GraphQLObjectType,
            source: Any,
            field_details_list: FieldDetailsList,
            path: Path,
            position_context: Any,
        ) -> Any:
            field = plain.get((parent_type.name, field_details_list[0].node.name.value))
            if field is None or self.middleware_manager is not None:
                return super().execute_field(
                    parent_type, source, field_details_list, path, position_context
                )
            try:
                # what strawberry's default resolver and graphql-core's completion do
                result = getattr(source, field.attribute)
                if isinstance(result, Exception):
                    raise result
                if result is None or result is Undefined:
                    if field.non_null:
                        raise TypeError(
                            "Cannot return null for non-nullable field "
                            f"{parent_type.name}.{field_details_list[0].node.name.value}."
                        )
                    return None
                return self.complete_leaf_value(field.leaf, result)
            except Exception as raw_error:
                self.handle_field_error(raw_error, field.type, field_details_list, path)
                return None

    LeanExecutor.__name__ = LeanExecutor.__qualname__ = f"Lean{base.__name__}"
    return LeanExecutor
