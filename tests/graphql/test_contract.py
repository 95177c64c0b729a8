"""The schema contract: checked-in schema equals the code's; breaking changes need a
deprecation period; every type and field is described."""

from __future__ import annotations

from pathlib import Path

from gateway.graphql.contract import breaking_changes, check_schema, export_schema, undocumented
from tests.support.paths import ROOT

OLD = '''
"""Root."""
type Query {
  """Kept."""
  a: String
  """Deprecated before removal."""
  b: String @deprecated(reason: "use a")
  """Removed without warning."""
  c: String
  """Type changed."""
  d: Int
}
'''

NEW = '''
"""Root."""
type Query {
  """Kept."""
  a: String
  """Type changed."""
  d: String
  """Added."""
  e: String
}
'''


def test_checked_in_schema_matches_the_code() -> None:
    problems = check_schema(ROOT / "schema.graphql", ROOT / "schema.baseline.graphql")
    assert problems == []


def test_removal_needs_a_deprecation_period() -> None:
    problems = breaking_changes(OLD, NEW)
    assert any("Query.c was removed" in p for p in problems)
    assert any("Query.d changed type" in p for p in problems)
    assert not any("Query.b" in p for p in problems)


def test_drift_and_missing_files_are_reported(tmp_path: Path) -> None:
    stale = tmp_path / "schema.graphql"
    stale.write_text(export_schema().replace("Crosswalk", "Crossroad", 1))
    problems = check_schema(stale, tmp_path / "baseline.graphql")
    assert any("differs from the schema the code builds" in p for p in problems)
    assert any("baseline.graphql is missing" in p for p in problems)
    assert check_schema(tmp_path / "none.graphql", tmp_path / "baseline.graphql")


def test_undocumented_types_and_fields_are_named() -> None:
    assert undocumented('type Query { """x""" a: String b: Int }') == ["Query", "Query.b"]
