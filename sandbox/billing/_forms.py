"""Stripe's form encoding, both ways: bracketed keys into nested values, and checking them.

Stripe reads ``application/x-www-form-urlencoded`` bodies (and query strings) the Rack way:
``metadata[erp_bp]=1000042`` is a hash, ``items[0][price]=price_x`` an array of hashes,
``expand[]=customer`` an array. ``parse_form`` turns pairs into nested dicts and lists;
the ``Check`` combinators below validate them against an endpoint's parameters, naming
the offending parameter the way Stripe does (``items[0][quantity]``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sandbox.billing._errors import StripeError

__all__ = [
    "Check",
    "boolean",
    "created_filter",
    "enum",
    "expand_list",
    "integer",
    "list_of",
    "metadata",
    "obj",
    "parse_form",
    "string",
]

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")
#: Rack refuses deeper nesting too; it keeps a hostile body from building deep structures
MAX_DEPTH = 8
MAX_PARAMS = 2000


def _bad(message: str, param: str | None = None) -> StripeError:
    return StripeError(400, message, param=param)


def parse_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Nested params from ``(key, value)`` pairs; StripeError on a key that cannot nest."""
    root: dict[str, Any] = {}
    for count, (key, value) in enumerate(pairs):
        if count >= MAX_PARAMS:
            raise _bad(f"Too many parameters: at most {MAX_PARAMS} are accepted.")
        match = _KEY.match(key)
        if match is None:
            raise _bad(f"Invalid parameter name: {key[:100]}", key[:100])
        parts = [match.group(1), *_PART.findall(match.group(2))]
        if len(parts) > MAX_DEPTH:
            raise _bad(f"Parameter nesting is too deep: {key[:100]}", key[:100])
        _assign(root, parts, value, key)
    result = _arrays(root)
    assert isinstance(result, dict)
    return result


def _assign(root: dict[str, Any], parts: list[str], value: str, key: str) -> None:
    node: Any = root
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if part == "":
            # "expand[]=a": append; "items[][price]=x" is not something Stripe accepts
            if not isinstance(node, list) or not last:
                raise _bad(f"Invalid array parameter: {key[:100]}", key[:100])
            node.append(value)
            return
        if not isinstance(node, dict):
            raise _bad(f"Invalid hash parameter: {key[:100]}", key[:100])
        if last:
            if isinstance(node.get(part), dict | list):
                raise _bad(f"Invalid hash parameter: {key[:100]}", key[:100])
            node[part] = value
            return
        nxt = parts[depth + 1]
        child = node.get(part)
        if child is None:
            child = [] if nxt == "" else {}
            node[part] = child
        elif isinstance(child, str):
            raise _bad(f"Invalid hash parameter: {key[:100]}", key[:100])
        node = child


def _arrays(node: Any) -> Any:
    """Hashes keyed "0", "1", ... become arrays ordered by index, as Stripe reads them."""
    if isinstance(node, list):
        return [_arrays(v) for v in node]
    if not isinstance(node, dict):
        return node
    converted = {k: _arrays(v) for k, v in node.items()}
    if converted and all(k.isdigit() and len(k) <= 6 for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


# ---------------------------------------------------------------- checks

#: check(value, param_name) -> the value converted (int, bool, ...), or StripeError
Check = Callable[[Any, str], Any]


def string(max_length: int = 5000, *, allow_empty: bool = True) -> Check:
    def check(value: Any, param: str) -> Any:
        if not isinstance(value, str):
            raise _bad(f"Invalid string: {param} must be a string.", param)
        if len(value) > max_length:
            raise _bad(
                f"Invalid string: {value[:40]}...; must be at most {max_length} characters",
                param,
            )
        if not allow_empty and not value:
            raise _bad(
                f"You passed an empty string for '{param}'. We assume empty values are an "
                f"attempt to unset a parameter; however '{param}' cannot be unset.",
                param,
            )
        return value

    return check


def integer(minimum: int | None = None, maximum: int | None = None) -> Check:
    def check(value: Any, param: str) -> Any:
        if not isinstance(value, str) or not re.fullmatch(r"-?\d{1,15}", value):
            raise _bad(f"Invalid integer: {str(value)[:40]}", param)
        number = int(value)
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            low = "" if minimum is None else f" greater than or equal to {minimum}"
            high = "" if maximum is None else f" less than or equal to {maximum}"
            joiner = " and" if low and high else ""
            raise _bad(f"Invalid {param}: must be{low}{joiner}{high}", param)
        return number

    return check


def boolean() -> Check:
    def check(value: Any, param: str) -> Any:
        if value in ("true", "false"):
            return value == "true"
        raise _bad(f"Invalid boolean: {str(value)[:40]}", param)

    return check


def enum(*values: str) -> Check:
    def check(value: Any, param: str) -> Any:
        if value not in values:
            raise _bad(f"Invalid {param}: must be one of {', '.join(values)}", param)
        return value

    return check


def metadata() -> Check:
    """Up to 50 keys of at most 40 characters, string values of at most 500; "" unsets."""

    def check(value: Any, param: str) -> Any:
        if value == "":
            return {}  # metadata="" clears every key (an update merges otherwise)
        if not isinstance(value, dict):
            raise _bad(f"Invalid {param}: must be a hash of string keys and values", param)
        if len(value) > 50:
            raise _bad(f"Invalid {param}: at most 50 keys are allowed", param)
        for key, item in value.items():
            name = f"{param}[{key}]"
            if len(key) > 40:
                raise _bad(f"Invalid {name}: keys must be at most 40 characters", name)
            if not isinstance(item, str):
                raise _bad(f"Invalid {name}: metadata values must be strings", name)
            if len(item) > 500:
                raise _bad(f"Invalid {name}: values must be at most 500 characters", name)
        return dict(value)

    return check


def list_of(item: Check, *, max_items: int = 100) -> Check:
    def check(value: Any, param: str) -> Any:
        if value == "":
            return []
        if not isinstance(value, list):
            raise _bad(f"Invalid array: {param} must be an array", param)
        if len(value) > max_items:
            raise _bad(f"Invalid {param}: at most {max_items} items are allowed", param)
        return [item(v, f"{param}[{n}]") for n, v in enumerate(value)]

    return check


def expand_list() -> Check:
    return list_of(string(200))


def obj(fields: Mapping[str, Check], *, required: tuple[str, ...] = ()) -> Check:
    """A hash with exactly these keys allowed; unknown ones are named, missing ones too."""

    def check(value: Any, param: str) -> Any:
        if not isinstance(value, dict):
            raise _bad(f"Invalid object: {param or 'the request'} must be a hash", param or None)
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = f"{param}[{key}]" if param else key
            rule = fields.get(key)
            if rule is None:
                raise _bad(f"Received unknown parameter: {name}", name)
            out[key] = rule(item, name)
        for key in required:
            if key not in out or out[key] == "":
                name = f"{param}[{key}]" if param else key
                raise StripeError(
                    400, f"Missing required param: {name}.", code="parameter_missing", param=name
                )
        return out

    return check


def created_filter() -> Check:
    """``created=<unix>`` or ``created[gte]=...`` (gt, gte, lt, lte)."""
    bound = integer(0)
    ranged = obj({op: bound for op in ("gt", "gte", "lt", "lte")})

    def check(value: Any, param: str) -> Any:
        if isinstance(value, dict):
            return ranged(value, param)
        return {"eq": bound(value, param)}

    return check


def matches_created(created: int, spec: dict[str, int] | None) -> bool:
    if not spec:
        return True
    ops: dict[str, Callable[[int, int], bool]] = {
        "eq": lambda a, b: a == b,
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }
    return all(ops[op](created, bound) for op, bound in spec.items())
