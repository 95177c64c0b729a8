"""The executor the operation runner hands to graphql-core: strawberry's, made lean.

Three costs of the stock executor show on every read, and none buys anything here:

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
- **Strawberry's resolver protocol for resolver fields.** Per call it converts every
  argument generically (name conversion included), wraps the resolver in a coroutine of
  its own and folds an empty extension chain. For a resolver whose arguments are plain
  scalars, enums or lists of them (``customer(id:)``, ``cases(status:, first:, after:)``)
  the conversion is known when the schema is built: the argument names are mapped once,
  lists are copied (graphql-core shares defaults between requests) and the resolver is
  called directly; graphql-core awaits what it returns.

Permissions are not bypassed: scope checks live in the resolvers (``require_scope``),
and a field with a resolver, arguments, strawberry extensions or permission classes is
never plain.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, NamedTuple

from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLSchema,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetails, FieldDetailsList
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path, Undefined
from graphql.type.definition import GraphQLResolveInfoHelpers
from strawberry import Schema
from strawberry.relay.types import GlobalID
from strawberry.scalars import is_scalar
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryOptional,
    StrawberryType,
)
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition
from strawberry.types.field import StrawberryField

ResolveInfo = GraphQLResolveInfo[Any]
Details = FieldDetails

__all__ = ["LeanResolver", "PlainField", "executor_class", "lean_resolvers", "plain_fields"]


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
    plain: dict[tuple[str, str], PlainField] = {}
    for key, field, definition in _strawberry_fields(schema):
        if field.args or not definition.is_basic_field or definition.permission_classes:
            continue
        if getattr(field.resolve, "_is_default", False) is not True:
            continue  # exception handlers or other wrapping: keep strawberry's resolver
        field_type = field.type
        non_null = isinstance(field_type, GraphQLNonNull)
        leaf = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
        if is_leaf_type(leaf):
            plain[key] = PlainField(definition.python_name, field_type, leaf, non_null)
    return plain


def _strawberry_fields(
    schema: Schema,
) -> Iterator[tuple[tuple[str, str], GraphQLField, StrawberryField]]:
    """Every field of the schema's object types with the strawberry field behind it."""
    graphql_schema: GraphQLSchema = schema._schema
    for type_name, graphql_type in graphql_schema.type_map.items():
        if not isinstance(graphql_type, GraphQLObjectType) or type_name.startswith("__"):
            continue
        for field_name, field in graphql_type.fields.items():
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if isinstance(definition, StrawberryField):
                yield (type_name, field_name), field, definition


class LeanResolver(NamedTuple):
    """A resolver field called without strawberry's generic argument conversion."""

    field: GraphQLField
    definition: StrawberryField
    #: the resolver itself (strawberry's ``StrawberryResolver``)
    call: Callable[..., Any]
    #: (GraphQL argument name, Python parameter name, whether the value is a list to copy)
    arguments: tuple[tuple[str, str, bool], ...]
    self_parameter: bool
    #: parameter names that receive the parent object and the strawberry ``Info``
    source_parameters: tuple[str, ...]
    info_parameter: str | None


def _is_leaf(type_: Any, registry: Any) -> bool:
    if isinstance(type_, StrawberryEnumDefinition) or has_enum_definition(type_):
        return True
    return (
        type_ is not GlobalID
        and not isinstance(type_, StrawberryType)
        and is_scalar(type_, registry)
    )


def _argument_kind(type_: Any, registry: Any) -> bool | None:
    """Whether the argument's value is a list to copy; None if it needs strawberry's
    conversion (input objects, global ids, ``Maybe``, lazy types)."""
    if isinstance(type_, StrawberryMaybe):
        return None
    if isinstance(type_, StrawberryOptional):
        type_ = type_.of_type
    if isinstance(type_, StrawberryList):
        item = type_.of_type
        if isinstance(item, StrawberryMaybe):
            return None
        if isinstance(item, StrawberryOptional):
            item = item.of_type
        return True if _is_leaf(item, registry) else None
    return False if _is_leaf(type_, registry) else None


def lean_resolvers(schema: Schema) -> dict[tuple[str, str], LeanResolver]:
    """(object type name, field name) -> how to call it, for every resolver field whose
    arguments need no conversion beyond their names."""
    if schema.exception_handlers or getattr(schema, "extensions", None):
        return {}  # handlers and extensions hook into strawberry's resolver wrapper
    config = schema.config
    registry = schema.schema_converter.scalar_registry
    lean: dict[tuple[str, str], LeanResolver] = {}
    for key, field, definition in _strawberry_fields(schema):
        resolver = definition.base_resolver
        if resolver is None or definition.extensions or definition.permission_classes:
            continue
        if definition.is_subscription or getattr(field.resolve, "_is_default", True):
            continue
        arguments: list[tuple[str, str, bool]] = []
        for argument in definition.arguments:
            kind = _argument_kind(argument.type, registry)
            if kind is None or argument.python_name is None:
                break
            name = config.name_converter.from_argument(argument)
            arguments.append((name, argument.python_name, kind))
        else:
            lean[key] = LeanResolver(
                field,
                definition,
                resolver,
                tuple(arguments),
                resolver.self_parameter is not None,
                tuple(
                    p.name
                    for p in (resolver.parent_parameter, resolver.root_parameter)
                    if p is not None
                ),
                resolver.info_parameter.name if resolver.info_parameter else None,
            )
    return lean


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
    """strawberry's execution context class for ``schema``, with the changes above."""
    base: type[Any] = schema.execution_context_class
    plain = plain_fields(schema)
    lean = lean_resolvers(schema)
    info_class = schema.config.info_class

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
            key = (parent_type.name, field_details_list[0].node.name.value)
            field = plain.get(key)
            if field is None or self.middleware_manager is not None:
                resolver = lean.get(key)
                if resolver is not None and self.middleware_manager is None:
                    nodes = [d.node for d in field_details_list]
                    info = self.build_resolve_info(resolver.field, nodes, parent_type, path)
                    return self._call_lean(
                        resolver, source, info, field_details_list, position_context
                    )
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

        def _call_lean(
            self,
            resolver: LeanResolver,
            source: Any,
            info: ResolveInfo,
            details: FieldDetailsList,
            position: Any,
        ) -> Any:
            """graphql-core's ``execute_field`` with the resolver called directly."""
            return_type = resolver.field.type
            path = info.path
            try:
                result = self._resolve(resolver, source, info, details[0])
                if self.is_awaitable(result):
                    return self.complete_awaitable_value(
                        return_type, details, info, path, result, position
                    )
                completed = self.complete_value(return_type, details, info, path, result, position)
                if self.is_awaitable(completed):
                    return self._await_completed(completed, return_type, details, path)
            except Exception as raw_error:
                self.handle_field_error(raw_error, return_type, details, path)
                return None
            return completed

        def _resolve(
            self, lean: LeanResolver, source: Any, info: ResolveInfo, first: Details
        ) -> Any:
            """The resolver's own value (maybe awaitable) for this field's arguments."""
            field_def = lean.field
            raw = (
                get_argument_values(
                    field_def,
                    first.node,
                    self.variable_values,
                    first.fragment_variable_values,
                    self.hide_suggestions,
                )
                if field_def.args or first.node.arguments
                else {}
            )
            kwargs: dict[str, Any] = {}
            for name, python_name, is_list in lean.arguments:
                if name in raw:
                    value = raw[name]
                    # a list default is shared by every request that omits it: copy
                    kwargs[python_name] = list(value) if is_list and value is not None else value
            for parameter in lean.source_parameters:
                kwargs[parameter] = source
            if lean.info_parameter is not None:
                kwargs[lean.info_parameter] = info_class(_raw_info=info, _field=lean.definition)
            call = lean.call
            return call(source, **kwargs) if lean.self_parameter else call(**kwargs)

        async def _await_completed(
            self,
            completed: Awaitable[Any],
            return_type: GraphQLOutputType,
            field_details_list: FieldDetailsList,
            path: Path,
        ) -> Any:
            try:
                return await completed
            except Exception as raw_error:
                self.handle_field_error(raw_error, return_type, field_details_list, path)
                return None

    LeanExecutor.__name__ = LeanExecutor.__qualname__ = f"Lean{base.__name__}"
    return LeanExecutor
