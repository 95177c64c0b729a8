"""Reading Salesforce Bulk API 2.0 query results: the CSV back into SOQL-shaped rows.

A query job's results are CSV (a header row, every value quoted, a null as an empty
value); the REST query answers JSON. ``rows_from_csv`` turns the one into the other, so
the connector translates both with the same code: booleans ``true``/``false`` become
``bool``, numbers ``int`` or ``float`` as JSON would give them, datetimes Salesforce's
REST form (``2026-11-01T09:00:00.000+0000``, where the CSV says ``...Z``), empty values
``None``, and ``Account.Name`` columns nest as ``{"Account": {"Name": ...}}``. Only the
``attributes`` the REST answer adds to each record are missing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any, Literal

__all__ = [
    "BULK_ABOVE",
    "BULK_PAGE",
    "POLL_CAP",
    "POLL_FIRST",
    "WAIT_SHARE",
    "CsvError",
    "FieldType",
    "rows_from_csv",
]

#: an object holding more records than this is listed through a bulk query job on the
#: initial load; fewer fit in one or two SOQL batches, which cost fewer calls than a job
BULK_ABOVE = 2000
#: rows asked per result set (maxRecords): a wide row is ~1 kB, well under max_body_bytes
BULK_PAGE = 5000
#: the first pause between two reads of a job's state, doubled up to POLL_CAP
POLL_FIRST = 0.05
POLL_CAP = 1.0
#: the share of the call's time (endpoint.timeout) that waiting for a job may take; the
#: rest is for reading the results and deleting the job
WAIT_SHARE = 0.5

FieldType = Literal["boolean", "number", "datetime"]


class CsvError(ValueError):
    """The CSV could not be read as query results."""


def _typed(text: str, kind: FieldType | None, column: str) -> Any:
    if text == "":
        return None
    if kind == "boolean":
        if text not in ("true", "false"):
            raise CsvError(f"column {column}: {text!r} is not true or false")
        return text == "true"
    if kind == "number":
        try:
            return int(text) if text.lstrip("-").isdigit() else float(text)
        except ValueError:
            raise CsvError(f"column {column}: {text!r} is not a number") from None
    if kind == "datetime" and text.endswith("Z"):
        return text[:-1] + "+0000"
    return text


def rows_from_csv(body: bytes, types: Mapping[str, FieldType]) -> list[dict[str, Any]]:
    """The rows of one result set; ``types`` names the fields that are not text.

    Raises ``CsvError`` for what is not query-results CSV: no header, a row whose width
    differs from the header's, a value that does not fit its field's type.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvError(f"not UTF-8: {exc}") from None
    try:
        lines = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise CsvError(str(exc)) from None
    if not lines:
        raise CsvError("no header row")
    header, *data = lines
    paths = [column.split(".") for column in header]
    rows: list[dict[str, Any]] = []
    for number, values in enumerate(data, start=2):
        if len(values) != len(header):
            raise CsvError(f"row {number} has {len(values)} values for {len(header)} columns")
        row: dict[str, Any] = {}
        for column, path, value in zip(header, paths, values, strict=True):
            typed = _typed(value, types.get(column), column)
            if len(path) == 1:
                row[column] = typed
                continue
            # Account.Name: an absent parent is null, as in the REST answer
            parent = row.get(path[0])
            if typed is not None:
                if not isinstance(parent, dict):
                    parent = row[path[0]] = {}
                parent[path[1]] = typed
            elif path[0] not in row:
                row[path[0]] = None
        rows.append(row)
    return rows
