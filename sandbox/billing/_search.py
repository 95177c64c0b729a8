"""Stripe's search query language, the subset the sandbox serves.

    metadata['erp_bp']:'1000042'        exact match on a metadata key
    name:'Acme GmbH'  email:"a@b.c"      exact match (case-insensitive)
    name~'acme'                          substring (at least 3 characters)
    -name:'x'                            negation
    created>1700000000                   numeric comparison (>, <, >=, <=, :)
    clause AND clause / clause OR clause (a space means AND; AND and OR cannot be mixed)

Values are quoted with ' or " and a quote inside is escaped with a backslash. Anything
else is a 400 naming ``query``: the parser never evaluates what it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.billing._errors import StripeError

__all__ = ["Clause", "Query", "parse_query"]

MAX_CLAUSES = 10

#: field kinds per resource: "string" (:, ~), "token" (: only), "number" (:, <, >, ...)
FIELDS: dict[str, dict[str, str]] = {
    "customers": {"name": "string", "email": "string", "phone": "string", "created": "number"},
    "subscriptions": {"status": "token", "created": "number"},
    "invoices": {
        "customer": "token",
        "subscription": "token",
        "status": "token",
        "number": "token",
        "currency": "token",
        "total": "number",
        "created": "number",
    },
}


@dataclass(frozen=True, slots=True)
class Clause:
    field: str
    metadata_key: str | None
    op: str
    value: str | int
    negated: bool

    def matches(self, doc: dict[str, Any]) -> bool:
        if self.metadata_key is not None:
            actual: Any = (doc.get("metadata") or {}).get(self.metadata_key)
        else:
            actual = doc.get(self.field)
        result = _compare(actual, self.op, self.value)
        return not result if self.negated else result


def _compare(actual: Any, op: str, value: str | int) -> bool:
    if isinstance(value, int):
        if not isinstance(actual, int):
            return False
        tests: dict[str, Callable[[int, int], bool]] = {
            ":": lambda a, b: a == b,
            ">": lambda a, b: a > b,
            "<": lambda a, b: a < b,
            ">=": lambda a, b: a >= b,
            "<=": lambda a, b: a <= b,
        }
        return tests[op](actual, value)
    if not isinstance(actual, str):
        return False
    if op == "~":
        return value.casefold() in actual.casefold()
    return actual.casefold() == value.casefold()


@dataclass(frozen=True, slots=True)
class Query:
    clauses: tuple[Clause, ...]
    any_of: bool  # OR-joined

    def matches(self, doc: dict[str, Any]) -> bool:
        results = (clause.matches(doc) for clause in self.clauses)
        return any(results) if self.any_of else all(results)

    def pinned_metadata(self) -> tuple[str, str] | None:
        """``(key, value)`` when every hit must have ``metadata[key]`` equal to ``value``
        (case-insensitive): a lookup in an index instead of a scan."""
        if self.any_of and len(self.clauses) > 1:
            return None
        for clause in self.clauses:
            if clause.metadata_key is not None and clause.op == ":" and not clause.negated:
                return clause.metadata_key, str(clause.value).casefold()
        return None


def _error(message: str) -> StripeError:
    return StripeError(400, message, param="query")


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def skip_spaces(self) -> bool:
        start = self.pos
        while not self.at_end() and self.text[self.pos].isspace():
            self.pos += 1
        return self.pos > start

    def fail(self, what: str) -> StripeError:
        return _error(f"Invalid query: {what} at position {self.pos}.")

    def word(self) -> str:
        start = self.pos
        while not self.at_end() and (self.text[self.pos].isalnum() or self.text[self.pos] == "_"):
            self.pos += 1
        return self.text[start : self.pos]

    def quoted(self) -> str:
        quote = self.peek()
        if quote not in ("'", '"'):
            raise self.fail("expected a quoted value")
        self.pos += 1
        out: list[str] = []
        while True:
            if self.at_end():
                raise self.fail("unterminated string")
            char = self.text[self.pos]
            if char == "\\":
                if self.pos + 1 >= len(self.text):
                    raise self.fail("dangling escape")
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            self.pos += 1
            if char == quote:
                return "".join(out)
            out.append(char)

    def number(self) -> int:
        start = self.pos
        if self.peek() == "-":
            self.pos += 1
        while not self.at_end() and self.text[self.pos].isdigit():
            self.pos += 1
        digits = self.text[start : self.pos]
        if not digits.lstrip("-") or len(digits) > 16:
            raise self.fail("expected a number")
        return int(digits)


def parse_query(text: str, resource: str) -> Query:
    """The parsed query, or a 400 StripeError with ``param: query`` saying what is wrong."""
    if not text.strip():
        raise _error("The query is empty: pass a search query such as name:'Acme'.")
    if len(text) > 2000:
        raise _error("The query is too long: at most 2000 characters.")
    fields = FIELDS[resource]
    scanner = _Scanner(text)
    clauses: list[Clause] = []
    joiners: set[str] = set()
    scanner.skip_spaces()
    while True:
        clauses.append(_clause(scanner, fields, resource))
        if len(clauses) > MAX_CLAUSES:
            raise _error(f"Invalid query: at most {MAX_CLAUSES} clauses are allowed.")
        spaced = scanner.skip_spaces()
        if scanner.at_end():
            break
        if not spaced:
            raise scanner.fail("expected a space, AND or OR between clauses")
        mark = scanner.pos
        word = scanner.word().upper()
        if word in ("AND", "OR") and scanner.skip_spaces():
            joiners.add(word)
        else:
            scanner.pos = mark
            joiners.add("AND")
    if len(joiners) > 1:
        raise _error("Invalid query: AND and OR cannot be combined in the same query.")
    return Query(tuple(clauses), any_of=joiners == {"OR"})


def _clause(scanner: _Scanner, fields: dict[str, str], resource: str) -> Clause:
    negated = scanner.peek() == "-"
    if negated:
        scanner.pos += 1
    name = scanner.word()
    if not name:
        raise scanner.fail("expected a field name")
    metadata_key: str | None = None
    if name == "metadata":
        if scanner.peek() != "[":
            raise scanner.fail("expected metadata['key']")
        scanner.pos += 1
        metadata_key = scanner.quoted()
        if scanner.peek() != "]":
            raise scanner.fail("expected ']'")
        scanner.pos += 1
        kind = "token"
    elif name in fields:
        kind = fields[name]
    else:
        raise _error(
            f"Field `{name}` is an unsupported search field for resource `{resource}`. "
            f"Supported fields: {', '.join(sorted([*fields, 'metadata']))}."
        )
    op = ""
    for candidate in (">=", "<=", ":", "~", ">", "<"):
        if scanner.peek(len(candidate)) == candidate:
            op = candidate
            break
    if not op:
        raise scanner.fail("expected an operator (:, ~, >, <, >=, <=)")
    scanner.pos += len(op)
    if kind == "number":
        if op == "~":
            raise _error(f"Invalid query: `~` cannot be used with the numeric field `{name}`.")
        value: str | int = scanner.number()
    else:
        if op not in (":", "~") or (op == "~" and kind != "string"):
            raise _error(f"Invalid query: the operator `{op}` cannot be used with `{name}`.")
        value = scanner.quoted()
        if op == "~" and len(value) < 3:
            raise _error("Invalid query: substring matching (~) needs at least 3 characters.")
    return Clause(name, metadata_key, op, value, negated)
