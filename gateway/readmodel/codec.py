"""Canonical records to JSON and back, for the read model's store rows.

Each record becomes a plain JSON object with its type's name under ``"@"``; money
(``Decimal``) and times travel as text, nested records and tuples as objects and lists.
Decoding reads the field types from the dataclass itself, so a new canonical field needs
no change here.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import canonical

__all__ = ["decode", "encode"]

#: the canonical record types by name
_TYPES: dict[str, type[Any]] = {
    name: value
    for name, value in vars(canonical).items()
    if isinstance(value, type) and dataclasses.is_dataclass(value)
}


def encode(value: Any) -> Any:
    """JSON-ready form of a canonical record, tuple of records, or plain value."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal | datetime | date):
        return value.isoformat() if not isinstance(value, Decimal) else str(value)
    if isinstance(value, tuple | list):
        return [encode(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"@": type(value).__name__}
        for f in dataclasses.fields(value):
            out[f.name] = encode(getattr(value, f.name))
        return out
    if isinstance(value, float):
        return value
    raise TypeError(f"cannot encode {type(value).__name__} for the read model")


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _convert(hint: Any, raw: Any) -> Any:
    if raw is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(inner[0], raw) if len(inner) == 1 else raw
    if origin is tuple:
        args = typing.get_args(hint)
        return tuple(_convert(args[0], item) for item in raw)
    if hint is Decimal:
        return Decimal(raw)
    if hint is datetime:
        return datetime.fromisoformat(raw)
    if hint is date:
        return date.fromisoformat(raw)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(raw)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return decode(raw)
    return raw


def decode(raw: Any) -> Any:
    """The canonical value ``encode`` gave ``raw`` for."""
    if isinstance(raw, list):
        return tuple(decode(item) for item in raw)
    if not isinstance(raw, dict) or "@" not in raw:
        return raw
    cls = _TYPES.get(raw["@"])
    if cls is None:
        raise ValueError(f"unknown canonical type {raw['@']!r} in the read model")
    hints = _hints(cls)
    kwargs = {name: _convert(hints[name], value) for name, value in raw.items() if name != "@"}
    return cls(**kwargs)
