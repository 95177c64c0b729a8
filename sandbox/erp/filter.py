"""A small OData V2 ``$filter`` parser and evaluator.

Grammar (the subset SAP Gateway clients use)::

    expr    := and ("or" and)*
    and     := unary ("and" unary)*
    unary   := "not" unary | compare
    compare := primary (("eq"|"ne"|"gt"|"ge"|"lt"|"le") primary)?
    primary := "(" expr ")" | literal | function "(" expr ("," expr)* ")" | Property

Literals: ``'text'`` (``''`` escapes a quote), numbers (``12``, ``1.5``, ``10M``),
``datetime'2026-01-31T00:00:00'``, ``datetimeoffset'...Z'``, ``true``, ``false``, ``null``.
Functions: ``substringof``, ``startswith``, ``endswith``, ``tolower``, ``toupper``,
``trim``, ``length``. Everything is type-checked against the entity set before a single
record is read, so a bad expression is a 400 that names the problem, never a 500.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.erp.model import EntitySet

__all__ = ["Filter", "FilterError", "Predicate", "compile_filter", "parse_datetime_literal"]

#: deeper nesting than this is refused (and keeps recursion far from Python's limit)
MAX_DEPTH = 40
MAX_TOKENS = 5000

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<typed>(?:datetimeoffset|datetime|guid|time)'(?:[^']|'')*')
  | (?P<str>'(?:[^']|'')*')
  | (?P<num>[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdDfFlL]?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)

_COMPARE = ("eq", "ne", "gt", "ge", "lt", "le")
_ARITHMETIC = ("add", "sub", "mul", "div", "mod")
_KEYWORDS = {"and", "or", "not", "true", "false", "null", *_COMPARE, *_ARITHMETIC}


class FilterError(ValueError):
    """The ``$filter`` cannot be used; ``prop`` names the property at fault, if one is."""

    def __init__(self, message: str, prop: str | None = None) -> None:
        super().__init__(message)
        self.prop = prop


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # typed | str | num | name | punct
    text: str
    pos: int


# Static types of expressions: "string", "number", "datetime", "bool", "null", "guid"
Value = Any
Evaluator = Callable[[dict[str, Any]], Value]
Predicate = Callable[[dict[str, Any]], bool]

_EDM_TYPES = {
    "Edm.String": "string",
    "Edm.Decimal": "number",
    "Edm.Int32": "number",
    "Edm.DateTime": "datetime",
    "Edm.DateTimeOffset": "datetime",
    "Edm.Boolean": "bool",
}


def parse_datetime_literal(text: str) -> int:
    """``2026-01-31T10:00[:00[.123]][Z|+01:00]`` as epoch milliseconds (naive means UTC)."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise FilterError(f"Invalid datetime literal '{text}'") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise FilterError(
                f"Invalid token at position {pos + 1} in $filter: {text[pos:pos+20]!r}"
            )
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Tok(kind, match.group(), pos))
            if len(tokens) > MAX_TOKENS:
                raise FilterError(f"$filter is too long (over {MAX_TOKENS} tokens)")
        pos = match.end()
    return tokens


class Filter:
    """A compiled ``$filter``: call it on a record. ``hint``, when not None, is
    ``(property, values)``: every record the filter accepts has one of these string
    values in that property (it is an ``eq`` of the property, or an ``or`` of such, maybe
    ``and`` more), so a caller may test only the records an index gives for them."""

    __slots__ = ("_fn", "hint")

    def __init__(self, fn: Evaluator, hint: tuple[str, frozenset[str]] | None) -> None:
        self._fn = fn
        self.hint = hint

    def __call__(self, doc: dict[str, Any]) -> bool:
        return self._fn(doc) is True


class _Parser:
    def __init__(self, text: str, entity_set: EntitySet) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.es = entity_set
        self.depth = 0
        # id(evaluator) -> (evaluator, what it is): string properties read as is, string
        # literals, and conditions with an equality hint (see ``Filter.hint``). The
        # evaluator is held too, so its id is not reused while parsing.
        self._props: dict[int, tuple[Evaluator, str]] = {}
        self._literals: dict[int, tuple[Evaluator, str]] = {}
        self._hints: dict[int, tuple[Evaluator, tuple[str, frozenset[str]]]] = {}

    def _hint(self, fn: Evaluator) -> tuple[str, frozenset[str]] | None:
        entry = self._hints.get(id(fn))
        return entry[1] if entry is not None and entry[0] is fn else None

    def _remember(self, fn: Evaluator, hint: tuple[str, frozenset[str]] | None) -> None:
        if hint is not None:
            self._hints[id(fn)] = (fn, hint)

    # -------------------------------------------------------------- token helpers

    def peek(self) -> _Tok | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def peek_word(self) -> str | None:
        tok = self.peek()
        return tok.text if tok is not None and tok.kind == "name" else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise FilterError("Unexpected end of $filter expression")
        self.i += 1
        return tok

    def expect(self, text: str) -> None:
        tok = self.take()
        if tok.text != text:
            raise FilterError(f"Expected '{text}' at position {tok.pos + 1}, found '{tok.text}'")

    # -------------------------------------------------------------- grammar

    def parse(self) -> Filter:
        typ, fn = self.expr()
        if self.peek() is not None:
            tok = self.take()
            raise FilterError(f"Unexpected '{tok.text}' at position {tok.pos + 1} in $filter")
        if typ != "bool":
            raise FilterError("$filter must be a condition (a comparison or boolean function)")
        return Filter(fn, self._hint(fn))

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError(f"$filter nests deeper than {MAX_DEPTH} levels")

    def expr(self) -> tuple[str, Evaluator]:
        parts = [self.and_()]
        while self.peek_word() == "or":
            self.take()
            parts.append(self.and_())
        if len(parts) == 1:
            return parts[0]
        fns = [self._bool_operand(p, "or") for p in parts]
        either: Evaluator = lambda doc: any(f(doc) is True for f in fns)  # noqa: E731
        hints = [self._hint(f) for f in fns]
        if all(h is not None and h[0] == hints[0][0] for h in hints):  # type: ignore[index]
            values = frozenset().union(*(h[1] for h in hints if h is not None))
            self._remember(either, (hints[0][0], values))  # type: ignore[index]
        return "bool", either

    def and_(self) -> tuple[str, Evaluator]:
        parts = [self.unary()]
        while self.peek_word() == "and":
            self.take()
            parts.append(self.unary())
        if len(parts) == 1:
            return parts[0]
        fns = [self._bool_operand(p, "and") for p in parts]
        both: Evaluator = lambda doc: all(f(doc) is True for f in fns)  # noqa: E731
        # what all parts accept, the first part with a hint accepts too
        self._remember(both, next((h for h in map(self._hint, fns) if h is not None), None))
        return "bool", both

    def unary(self) -> tuple[str, Evaluator]:
        if self.peek_word() == "not":
            self.take()
            self.nest()
            operand = self._bool_operand(self.unary(), "not")
            self.depth -= 1
            return "bool", lambda doc: operand(doc) is not True
        return self.compare()

    @staticmethod
    def _bool_operand(part: tuple[str, Evaluator], op: str) -> Evaluator:
        if part[0] != "bool":
            raise FilterError(f"Operand of '{op}' must be a condition, not a {part[0]} value")
        return part[1]

    def compare(self) -> tuple[str, Evaluator]:
        left = self.primary()
        word = self.peek_word()
        if word in _ARITHMETIC:
            raise FilterError(f"Arithmetic operator '{word}' is not supported in $filter")
        if word not in _COMPARE:
            return left
        self.take()
        right = self.primary()
        check = _comparison(word, left, right)
        if word == "eq":
            for prop, literal in ((left[1], right[1]), (right[1], left[1])):
                name = self._props.get(id(prop))
                value = self._literals.get(id(literal))
                if name and value and name[0] is prop and value[0] is literal:
                    self._remember(check, (name[1], frozenset({value[1]})))
        return "bool", check

    def primary(self) -> tuple[str, Evaluator]:
        tok = self.take()
        if tok.text == "(":
            self.nest()
            inner = self.expr()
            self.depth -= 1
            self.expect(")")
            return inner
        if tok.kind == "str":
            value = tok.text[1:-1].replace("''", "'")
            literal: Evaluator = lambda doc: value  # noqa: E731
            self._literals[id(literal)] = (literal, value)
            return "string", literal
        if tok.kind == "typed":
            prefix, _, rest = tok.text.partition("'")
            raw = rest[:-1].replace("''", "'")
            if prefix in ("datetime", "datetimeoffset"):
                ms = parse_datetime_literal(raw)
                return "datetime", lambda doc: ms
            raise FilterError(f"{prefix} literals are not supported in $filter")
        if tok.kind == "num":
            text = tok.text.rstrip("mMdDfFlL")
            try:
                number = Decimal(text)
            except InvalidOperation as exc:
                raise FilterError(f"Invalid number '{tok.text}'") from exc
            return "number", lambda doc: number
        if tok.kind == "name":
            return self.name(tok)
        raise FilterError(f"Unexpected '{tok.text}' at position {tok.pos + 1} in $filter")

    def name(self, tok: _Tok) -> tuple[str, Evaluator]:
        word = tok.text
        if word in ("true", "false"):
            flag = word == "true"
            return "bool", lambda doc: flag
        if word == "null":
            return "null", lambda doc: None
        if word in _KEYWORDS:
            raise FilterError(f"Unexpected keyword '{word}' at position {tok.pos + 1}")
        nxt = self.peek()
        if nxt is not None and nxt.text == "(":
            return self.function(word)
        if "/" in word:
            raise FilterError(f"Property path '{word}' is not supported in $filter", word)
        prop = self.es.prop_map.get(word)
        if prop is None:
            raise FilterError(
                f"Property '{word}' not found in type '{self.es.qualified_type}'", word
            )
        typ = _EDM_TYPES.get(prop.type, "string")
        name = prop.name
        if typ == "number":
            return typ, lambda doc: _to_decimal(doc.get(name))
        read: Evaluator = lambda doc: doc.get(name)  # noqa: E731
        if typ == "string":
            self._props[id(read)] = (read, name)
        return typ, read

    def function(self, fname: str) -> tuple[str, Evaluator]:
        spec = _FUNCTIONS.get(fname)
        if spec is None:
            raise FilterError(f"Function '{fname}' is not supported in $filter")
        arg_types, result, impl = spec
        self.expect("(")
        self.nest()
        args = [self.expr()]
        while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
            self.take()
            args.append(self.expr())
        self.expect(")")
        self.depth -= 1
        if len(args) != len(arg_types):
            raise FilterError(f"Function '{fname}' takes {len(arg_types)} argument(s)")
        for n, ((typ, _), want) in enumerate(zip(args, arg_types, strict=True), 1):
            if typ not in (want, "null"):
                raise FilterError(f"Argument {n} of '{fname}' must be a {want}, not a {typ}")
        fns = [a[1] for a in args]

        def call(doc: dict[str, Any]) -> Value:
            values = [f(doc) for f in fns]
            if any(v is None for v in values):
                return None
            return impl(*values)

        return result, call


def _to_decimal(value: object) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


_FUNCTIONS: dict[str, tuple[tuple[str, ...], str, Callable[..., Value]]] = {
    "substringof": (("string", "string"), "bool", lambda needle, hay: needle in hay),
    "startswith": (("string", "string"), "bool", lambda s, prefix: s.startswith(prefix)),
    "endswith": (("string", "string"), "bool", lambda s, suffix: s.endswith(suffix)),
    "tolower": (("string",), "string", lambda s: s.lower()),
    "toupper": (("string",), "string", lambda s: s.upper()),
    "trim": (("string",), "string", lambda s: s.strip()),
    "length": (("string",), "number", lambda s: Decimal(len(s))),
}


def _comparison(op: str, left: tuple[str, Evaluator], right: tuple[str, Evaluator]) -> Evaluator:
    ltype, lfn = left
    rtype, rfn = right
    if "null" not in (ltype, rtype) and ltype != rtype:
        raise FilterError(f"Operator '{op}' cannot compare a {ltype} with a {rtype}")
    if op in ("gt", "ge", "lt", "le") and "bool" in (ltype, rtype):
        raise FilterError(f"Operator '{op}' cannot order boolean values")

    def check(doc: dict[str, Any]) -> bool:
        a, b = lfn(doc), rfn(doc)
        if op == "eq":
            return bool(a == b)
        if op == "ne":
            return bool(a != b)
        if a is None or b is None:
            return False
        if op == "gt":
            return bool(a > b)
        if op == "ge":
            return bool(a >= b)
        if op == "lt":
            return bool(a < b)
        return bool(a <= b)

    return check


def compile_filter(text: str, entity_set: EntitySet) -> Filter:
    """A predicate over stored records of ``entity_set``; FilterError when ``text`` is bad."""
    return _Parser(text, entity_set).parse()
