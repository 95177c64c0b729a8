"""A small, real SOQL parser for the CRM sandbox (``sandbox.crm.soql_eval`` runs what it
parses).

Grammar (keywords case-insensitive)::

    SELECT item (, item)* FROM Object [WHERE cond]
        [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST] (, ...)*] [LIMIT n] [OFFSET n]
    item  := COUNT() | field | Relationship.field        (e.g. Account.Name on Opportunity)
    cond  := and (OR and)* ; and := not (AND not)* ; not := NOT not | ( cond ) | predicate
    predicate := field (= | != | <> | < | > | <= | >=) value
               | field [NOT] IN ( value, ... ) | field LIKE 'pattern'
    value := 'string' | number | true | false | null | 2026-01-01 | 2026-01-01T00:00:00Z
           | TODAY | YESTERDAY | TOMORROW | LAST_N_DAYS:n | NEXT_N_DAYS:n

Strings take the SOQL escapes ``\\' \\" \\\\ \\n \\r \\t \\b \\f`` and, in LIKE patterns,
``\\%`` and ``\\_`` for a literal percent sign or underscore; any other backslash is a
syntax error, as is an unbalanced quote: that is what turns a naive injection
(``x' OR Name LIKE '%``) into a 400 rather than a leak. Every field is checked against
the object's fields and every literal against the field's type before anything runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sandbox.crm.schema import FieldDef, ObjectDef, SalesforceError, object_def

__all__ = ["Bool", "Cmp", "DateRange", "FieldPath", "In", "Like", "Query", "parse"]

_KEYWORDS = {
    "SELECT", "FROM", "WHERE", "ORDER", "BY", "ASC", "DESC", "NULLS", "FIRST", "LAST",
    "LIMIT", "OFFSET", "AND", "OR", "NOT", "IN", "LIKE", "TRUE", "FALSE", "NULL",
}  # fmt: skip
_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>[+-]?\d+(?:\.\d+)?)
  | (?P<nday>(?:LAST|NEXT)_N_DAYS:\d+)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<quote>')
    """,
    re.VERBOSE | re.IGNORECASE,
)


def _malformed(query: str, column: int, message: str) -> SalesforceError:
    pointer = " " * max(column - 1, 0) + "^"
    return SalesforceError(
        400,
        "MALFORMED_QUERY",
        f"\n{query}\n{pointer}\nERROR at Row:1:Column:{column}\n{message}",
    )


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    column: int
    value: Any = None
    pattern: str | None = None  # for strings: the LIKE pattern as a regex


def _string(query: str, start: int) -> tuple[_Tok, int]:
    """The string literal opening at ``start`` (a quote): its value, LIKE regex and end."""
    value: list[str] = []
    regex: list[str] = []
    i = start + 1
    while i < len(query):
        ch = query[i]
        if ch == "'":
            tok = _Tok("string", query[start : i + 1], start + 1, "".join(value), "".join(regex))
            return tok, i + 1
        if ch == "\\":
            if i + 1 >= len(query):
                break
            nxt = query[i + 1]
            if nxt in _ESCAPES:
                value.append(_ESCAPES[nxt])
                regex.append(re.escape(_ESCAPES[nxt]))
            elif nxt in "%_":
                value.append(nxt)
                regex.append(re.escape(nxt))
            else:
                raise _malformed(
                    query,
                    i + 1,
                    f"Invalid string literal '{query[start : i + 2]}'. Illegal escape sequence "
                    f"'\\{nxt}': escape quotes and backslashes with a backslash",
                )
            i += 2
            continue
        value.append(ch)
        regex.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    raise _malformed(query, start + 1, "unterminated string literal: a quote is not closed")


def _tokens(query: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(query):
        match = _TOKEN.match(query, pos)
        if match is None:
            raise _malformed(query, pos + 1, f"unexpected token: '{query[pos]}'")
        kind = match.lastgroup or ""
        if kind == "quote":
            tok, pos = _string(query, pos)
            out.append(tok)
            continue
        text = match.group()
        if kind != "ws":
            if kind == "ident" and text.upper() in _KEYWORDS:
                kind = "kw"
            out.append(_Tok(kind, text, pos + 1))
        pos = match.end()
    out.append(_Tok("end", "<end of query>", len(query) + 1))
    return out


# ---------------------------------------------------------------- the parsed query


@dataclass(frozen=True, slots=True)
class FieldPath:
    """``Name`` or ``Account.Name``: the field read, through a relationship if any."""

    text: str  # as written, used for rendering nested records
    field: FieldDef
    via: FieldDef | None = None  # the reference field (AccountId) for a relationship path
    target: ObjectDef | None = None  # the parent object (Account)


@dataclass(frozen=True, slots=True)
class DateRange:
    start: date
    end: date


@dataclass(frozen=True, slots=True)
class Cmp:
    path: FieldPath
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class In:
    path: FieldPath
    values: tuple[Any, ...]
    negate: bool


@dataclass(frozen=True, slots=True)
class Like:
    path: FieldPath
    regex: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class Bool:
    op: str  # AND | OR | NOT
    parts: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Query:
    obj: ObjectDef
    fields: tuple[FieldPath, ...]
    count: bool
    where: Any
    order: tuple[tuple[FieldPath, bool, bool], ...]  # (path, descending, nulls first)
    limit: int | None
    offset: int


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.toks = _tokens(query)
        self.pos = 0
        self.obj: ObjectDef | None = None

    # -- token helpers
    @property
    def tok(self) -> _Tok:
        return self.toks[self.pos]

    def error(self, message: str | None = None) -> SalesforceError:
        tok = self.tok
        return _malformed(self.query, tok.column, message or f"unexpected token: '{tok.text}'")

    def is_kw(self, *words: str) -> bool:
        return self.tok.kind == "kw" and self.tok.text.upper() in words

    def take_kw(self, word: str) -> None:
        if not self.is_kw(word):
            raise self.error(f"unexpected token: '{self.tok.text}', expected {word}")
        self.pos += 1

    def take(self, kind: str, text: str | None = None) -> _Tok:
        tok = self.tok
        if tok.kind != kind or (text is not None and tok.text != text):
            raise self.error()
        self.pos += 1
        return tok

    # -- grammar
    def parse(self) -> Query:
        self.take_kw("SELECT")
        # fields are resolved once the FROM object is known: remember where they start
        items: list[_Tok] = []
        count = False
        while True:
            tok = self.tok
            if tok.kind == "ident" and tok.text.upper() == "COUNT":
                self.pos += 1
                self.take("punct", "(")
                if self.tok.kind != "punct" or self.tok.text != ")":
                    raise self.error("the sandbox supports COUNT() without a field only")
                self.take("punct", ")")
                count = True
            elif tok.kind == "ident":
                self.pos += 1
                items.append(tok)
            else:
                raise self.error()
            if self.tok.kind == "punct" and self.tok.text == ",":
                self.pos += 1
                continue
            break
        self.take_kw("FROM")
        obj_tok = self.take("ident")
        try:
            self.obj = object_def(obj_tok.text)
        except SalesforceError:
            raise SalesforceError(
                400,
                "INVALID_TYPE",
                f"\n{self.query}\nERROR at Row:1:Column:{obj_tok.column}\n"
                f"sObject type '{obj_tok.text}' is not supported.",
            ) from None
        if count and items:
            raise _malformed(
                self.query, items[0].column, "COUNT() cannot be combined with other fields"
            )
        fields: list[FieldPath] = []
        for tok in items:
            path = self.field_path(tok)
            if path.text.lower() not in {f.text.lower() for f in fields}:
                fields.append(path)
        where = None
        if self.is_kw("WHERE"):
            self.pos += 1
            where = self.condition()
        order: list[tuple[FieldPath, bool, bool]] = []
        if self.is_kw("ORDER"):
            self.pos += 1
            self.take_kw("BY")
            while True:
                path = self.field_path(self.take("ident"))
                desc = False
                if self.is_kw("ASC", "DESC"):
                    desc = self.tok.text.upper() == "DESC"
                    self.pos += 1
                nulls_first = not desc
                if self.is_kw("NULLS"):
                    self.pos += 1
                    if not self.is_kw("FIRST", "LAST"):
                        raise self.error()
                    nulls_first = self.tok.text.upper() == "FIRST"
                    self.pos += 1
                order.append((path, desc, nulls_first))
                if self.tok.kind == "punct" and self.tok.text == ",":
                    self.pos += 1
                    continue
                break
        limit = None
        offset = 0
        if self.is_kw("LIMIT"):
            self.pos += 1
            limit = self.whole_number()
        if self.is_kw("OFFSET"):
            self.pos += 1
            offset = self.whole_number()
            if offset > 2000:
                raise SalesforceError(
                    400,
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    f"Maximum SOQL offset allowed is 2000 (got {offset})",
                )
        if self.tok.kind != "end":
            raise self.error()
        return Query(self.obj, tuple(fields), count, where, tuple(order), limit, offset)

    def whole_number(self) -> int:
        tok = self.take("number")
        if not tok.text.isdigit():
            raise _malformed(self.query, tok.column, f"expected a whole number, got {tok.text}")
        return int(tok.text)

    def field_path(self, tok: _Tok) -> FieldPath:
        assert self.obj is not None
        parts = tok.text.split(".")
        if len(parts) == 1:
            fdef = self.obj.field_named(parts[0])
            if fdef is None:
                raise self.unknown_field(tok, self.obj)
            return FieldPath(fdef.name, fdef)
        if len(parts) == 2:
            via = self.obj.relationship_named(parts[0])
            if via is None or via.reference_to is None:
                raise SalesforceError(
                    400,
                    "INVALID_FIELD",
                    f"\n{self.query}\nERROR at Row:1:Column:{tok.column}\nDidn't understand "
                    f"relationship '{parts[0]}' in field path. Check the relationship name.",
                )
            target = object_def(via.reference_to)
            fdef = target.field_named(parts[1])
            if fdef is None:
                raise self.unknown_field(tok, target)
            assert via.relationship is not None
            return FieldPath(f"{via.relationship}.{fdef.name}", fdef, via, target)
        raise _malformed(self.query, tok.column, "the sandbox follows one relationship at most")

    def unknown_field(self, tok: _Tok, obj: ObjectDef) -> SalesforceError:
        return SalesforceError(
            400,
            "INVALID_FIELD",
            f"\n{self.query}\nERROR at Row:1:Column:{tok.column}\nNo such column "
            f"'{tok.text.split('.')[-1]}' on entity '{obj.name}'. If you are attempting to use "
            "a custom field, be sure to append the '__c' after the custom field name.",
        )

    def condition(self) -> Any:
        parts = [self.conjunction()]
        while self.is_kw("OR"):
            self.pos += 1
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else Bool("OR", tuple(parts))

    def conjunction(self) -> Any:
        parts = [self.negation()]
        while self.is_kw("AND"):
            self.pos += 1
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else Bool("AND", tuple(parts))

    def negation(self) -> Any:
        if self.is_kw("NOT"):
            self.pos += 1
            return Bool("NOT", (self.negation(),))
        if self.tok.kind == "punct" and self.tok.text == "(":
            self.pos += 1
            inner = self.condition()
            self.take("punct", ")")
            return inner
        return self.predicate()

    def predicate(self) -> Any:
        tok = self.take("ident")
        path = self.field_path(tok)
        if self.tok.kind == "op":
            op = self.tok.text
            self.pos += 1
            value = self.literal(path)
            if isinstance(value, bool) and op not in ("=", "!=", "<>"):
                raise self.error(f"operator {op} cannot compare a boolean")
            return Cmp(path, "!=" if op == "<>" else op, value)
        negate = False
        if self.is_kw("NOT"):
            self.pos += 1
            negate = True
            if not self.is_kw("IN"):
                raise self.error()
        if self.is_kw("IN"):
            self.pos += 1
            self.take("punct", "(")
            values = [self.literal(path)]
            while self.tok.kind == "punct" and self.tok.text == ",":
                self.pos += 1
                values.append(self.literal(path))
            self.take("punct", ")")
            return In(path, tuple(values), negate)
        if self.is_kw("LIKE"):
            self.pos += 1
            if path.field.type not in ("string", "picklist", "email", "id", "reference"):
                raise self.error(f"invalid operator on {path.field.type} field: LIKE")
            lit = self.take("string")
            assert lit.pattern is not None
            return Like(path, re.compile(lit.pattern, re.IGNORECASE | re.DOTALL))
        raise self.error(f"unexpected token: '{self.tok.text}', expected an operator")

    def literal(self, path: FieldPath) -> Any:
        tok = self.tok
        ftype = path.field.type
        self.pos += 1
        if tok.kind == "kw" and tok.text.upper() == "NULL":
            return None
        if ftype in ("string", "picklist", "email", "id", "reference"):
            if tok.kind != "string":
                raise self.type_error(tok, path, "string and should be enclosed in quotes")
            if ftype in ("id", "reference") and not (
                len(tok.value) in (15, 18) and tok.value.isalnum()
            ):
                raise _malformed(self.query, tok.column, f"invalid ID field: {tok.value}")
            return tok.value
        if ftype == "currency":
            if tok.kind != "number":
                raise self.type_error(tok, path, "double and should not be enclosed in quotes")
            return float(tok.text)
        if ftype == "boolean":
            if tok.kind != "kw" or tok.text.upper() not in ("TRUE", "FALSE"):
                raise self.type_error(tok, path, "boolean and should not be enclosed in quotes")
            return tok.text.upper() == "TRUE"
        # date and datetime fields
        today = datetime.now(UTC).date()
        if tok.kind == "date":
            try:
                day = date.fromisoformat(tok.text)
            except ValueError:
                raise _malformed(self.query, tok.column, f"invalid date: {tok.text}") from None
            return DateRange(day, day)
        if tok.kind == "datetime":
            try:
                moment = datetime.fromisoformat(tok.text.replace("Z", "+00:00"))
            except ValueError:
                raise _malformed(self.query, tok.column, f"invalid datetime: {tok.text}") from None
            return moment.astimezone(UTC)
        if tok.kind == "ident" and tok.text.upper() in ("TODAY", "YESTERDAY", "TOMORROW"):
            shift = {"TODAY": 0, "YESTERDAY": -1, "TOMORROW": 1}[tok.text.upper()]
            day = today + timedelta(days=shift)
            return DateRange(day, day)
        if tok.kind == "nday":
            days = int(tok.text.split(":")[1])
            if tok.text.upper().startswith("LAST"):
                return DateRange(today - timedelta(days=days), today)
            return DateRange(today, today + timedelta(days=days))
        raise self.type_error(tok, path, f"{ftype} and should not be enclosed in quotes")

    def type_error(self, tok: _Tok, path: FieldPath, expected: str) -> SalesforceError:
        return _malformed(
            self.query,
            tok.column,
            f"value of filter criterion for field '{path.field.name}' must be of type {expected}",
        )


def parse(query: str) -> Query:
    """The parsed query, or a 400 SalesforceError (MALFORMED_QUERY, INVALID_FIELD, ...)."""
    if not query.strip():
        raise SalesforceError(
            400, "MALFORMED_QUERY", "The query string is empty: pass q=SELECT ..."
        )
    return _Parser(query).parse()
