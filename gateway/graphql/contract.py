"""The schema contract: ``schema.graphql`` is exported from the code and checked in.

``export_schema()`` prints the schema the code builds. ``check_schema(path, baseline)``
lists what is wrong: the checked-in file differs from the code (run
``crosswalk schema export``), or the schema breaks the previous released schema (the
baseline file) without a deprecation period: a field may only be removed after a
release in which it carried ``@deprecated``. Dangerous but compatible changes (a new
enum value, an optional argument) are allowed.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from graphql import (
    BreakingChangeType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    build_schema,
    find_breaking_changes,
    is_specified_scalar_type,
)

__all__ = ["breaking_changes", "check_schema", "export_schema", "undocumented"]

_REMOVED_FIELD = re.compile(r"^(?:Field )?(\w+)\.(\w+) was removed\.$")


def export_schema() -> str:
    """The SDL of the schema the code builds, ending in a newline."""
    from gateway.graphql.schema import get_schema

    return get_schema().as_str().rstrip("\n") + "\n"


def _deprecated_in(schema: GraphQLSchema, type_name: str, field_name: str) -> bool:
    owner = schema.get_type(type_name)
    if not isinstance(owner, GraphQLObjectType | GraphQLInterfaceType):
        return False
    field = owner.fields.get(field_name)
    return field is not None and field.deprecation_reason is not None


def breaking_changes(old_sdl: str, new_sdl: str) -> list[str]:
    """Changes from ``old_sdl`` to ``new_sdl`` that break clients without a deprecation."""
    old, new = build_schema(old_sdl), build_schema(new_sdl)
    problems: list[str] = []
    for change in find_breaking_changes(old, new):
        if change.type is BreakingChangeType.FIELD_REMOVED:
            match = _REMOVED_FIELD.match(change.description)
            if match and _deprecated_in(old, match[1], match[2]):
                continue  # deprecated in the baseline release: removal is allowed now
            problems.append(
                f"breaking: {change.description} Deprecate it (@deprecated) for a release "
                "before removing it."
            )
        elif change.description.startswith("Standard scalar"):
            continue  # a built-in scalar no longer used: nothing a client can depend on
        else:
            problems.append(f"breaking: {change.description}")
    return problems


def check_schema(path: Path | str, baseline_path: Path | str) -> list[str]:
    """Every problem with the checked-in schema; an empty list means it is fine."""
    path, baseline_path = Path(path), Path(baseline_path)
    exported = export_schema()
    problems: list[str] = []
    if not path.exists():
        return [f"{path} is missing: run `crosswalk schema export` and commit it."]
    current = path.read_text()
    if current != exported:
        diff = list(
            difflib.unified_diff(
                current.splitlines(), exported.splitlines(), str(path), "code", lineterm="", n=1
            )
        )
        shown = "\n".join(diff[:40]) + ("\n..." if len(diff) > 40 else "")
        problems.append(
            f"{path} differs from the schema the code builds: run `crosswalk schema export` "
            f"and commit it.\n{shown}"
        )
    missing = undocumented(exported)
    if missing:
        problems.append(
            "every type and field needs a description; missing on: " + ", ".join(missing)
        )
    missing = undocumented(exported)
    if missing:
        problems.append(
            "every type and field needs a description; missing on: " + ", ".join(missing)
        )
    if not baseline_path.exists():
        problems.append(
            f"{baseline_path} is missing: it holds the last released schema; copy "
            f"{path} to it when releasing."
        )
        return problems
    problems.extend(
        f"{baseline_path} -> code: {p}"
        for p in breaking_changes(baseline_path.read_text(), exported)
    )
    return problems


def undocumented(sdl: str) -> list[str]:
    """Types and fields of ``sdl`` that have no description."""
    schema = build_schema(sdl)
    missing: list[str] = []
    for name, named in sorted(schema.type_map.items()):
        if name.startswith("__") or is_specified_scalar_type(named):
            continue
        if not named.description:
            missing.append(name)
        fields = getattr(named, "fields", None) or {}
        for field_name, field in fields.items():
            if not field.description:
                missing.append(f"{name}.{field_name}")
    return missing
