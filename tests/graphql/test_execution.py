"""The runner's executor: plain attribute fields read directly, no cycle left behind."""

from __future__ import annotations

import enum
import gc
from typing import Any

import anyio
import pytest
import strawberry
from graphql.execution import Executor

from gateway.governance.clients import Client, QueryLimits
from gateway.graphql.context import Context
from gateway.graphql.engine import OperationRunner, Outcome, RequestParams
from gateway.graphql.engine.lean import lean_resolvers, plain_fields
from gateway.graphql.errors import CodedError, ErrorCode
from gateway.graphql.schema import get_schema

pytestmark = pytest.mark.anyio

CLIENT = Client(id="tester", name="tester", scopes=frozenset({"*"}))


@strawberry.enum
class Color(enum.Enum):
    RED = "red"


@strawberry.type
class Item:
    name: str
    note: str | None
    color: Color
    count: int

    @strawberry.field
    def shout(self, times: int = 1) -> str:
        return str(self.count) * times


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item | None]:
        return [
            Item(name="a", note=None, color=Color.RED, count=1),
            # a plain field holding an error raises it on that field alone
            Item(
                name="b",
                note=CodedError(ErrorCode.FORBIDDEN, "not yours"),  # type: ignore[arg-type]
                color=Color.RED,
                count=2,
            ),
            # a null in a non-null field nulls the item (the list's items are non-null)
            Item(name=None, note="x", color=Color.RED, count=3),  # type: ignore[arg-type]
        ]

    @strawberry.field
    def echo(
        self, info: strawberry.Info, words: list[str], times: int = 1, color: Color = Color.RED
    ) -> str:
        words.append(info.field_name)  # its own copy: the request's variables stay as sent
        return f"{' '.join(words * times)} {color.value}"

    @strawberry.field
    async def slow(self) -> str:
        await anyio.sleep(30)
        return "late"


SCHEMA = strawberry.Schema(query=Query)


def _runner() -> OperationRunner:
    return OperationRunner(SCHEMA, limits=QueryLimits())


def _context(seconds: float = 5.0) -> Context:
    return Context(
        runtime=None,  # type: ignore[arg-type]
        client=CLIENT,
        correlation_id="test",
        deadline=anyio.current_time() + seconds,
    )


async def _run(
    query: str, context: Context | None = None, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    runner = _runner()
    params = RequestParams(query, variables=variables)
    prepared = runner.prepare(query, params, CLIENT, method="POST")
    assert not isinstance(prepared, Outcome), prepared
    document, _ = prepared
    outcome = await runner.execute(document, params, context or _context())
    return outcome.body


def test_plain_fields_are_leaf_attributes_only() -> None:
    plain = plain_fields(get_schema())
    assert plain["Case", "subject"].attribute == "subject"
    assert plain["GoldenRecord", "legalName"].attribute == "legal_name"
    assert plain["FieldSource", "field"].attribute == "field_name"
    # resolvers (scope checks), arguments and object-typed fields keep strawberry's path
    assert ("Customer360", "golden") not in plain
    assert ("Customer360", "identity") not in plain
    assert ("CaseConnection", "nodes") not in plain
    assert ("Query", "customer") not in plain


async def test_plain_fields_answer_as_strawberry_would() -> None:
    body = await _run("{ items { name note color count shout(times: 2) } }")
    assert body["data"] == {
        "items": [
            {"name": "a", "note": None, "color": "RED", "count": 1, "shout": "11"},
            {"name": "b", "note": None, "color": "RED", "count": 2, "shout": "22"},
            None,
        ]
    }
    errors = {tuple(e["path"]): e for e in body["errors"]}
    assert errors["items", 1, "note"]["extensions"]["code"] == "FORBIDDEN"
    # graphql-core's own null check: an internal error, located on the field
    assert errors["items", 2, "name"]["extensions"]["code"] == "INTERNAL_ERROR"


def test_lean_resolvers_are_resolvers_with_plain_arguments() -> None:
    lean = lean_resolvers(get_schema())
    assert lean["Query", "customer"].arguments == (
        ("id", "id", False),
        ("maxAge", "max_age", False),
    )
    cases = lean["Customer360", "cases"]
    assert cases.arguments == (
        ("status", "status", True),
        ("first", "first", False),
        ("after", "after", False),
    )
    assert cases.self_parameter
    assert cases.info_parameter == "info"
    # input objects keep strawberry's conversion
    assert ("Mutation", "onboardCustomer") not in lean
    assert ("Query", "echo") in lean_resolvers(SCHEMA)


async def test_lean_resolvers_get_their_arguments_as_strawberry_gives_them() -> None:
    variables = {"words": ["hi"]}
    query = "query($words: [String!]!) { echo(words: $words, times: 2, color: RED) }"
    body = await _run(query, variables=variables)
    assert body == {"data": {"echo": "hi echo hi echo red"}}
    assert variables == {"words": ["hi"]}
    body = await _run('{ echo(words: ["a"]) }')
    assert body == {"data": {"echo": "a echo red"}}


async def test_an_answered_operation_leaves_no_executor_behind() -> None:
    """The executor is freed by reference counting, not left to the cyclic collector."""
    gc.collect()
    gc.disable()
    try:
        body = await _run("{ items { count shout } }")
        assert body == {
            "data": {"items": [{"count": n, "shout": s} for n, s in ((1, "1"), (2, "2"), (3, "3"))]}
        }
        assert not [o for o in gc.get_objects() if isinstance(o, Executor)]
    finally:
        gc.enable()


async def test_an_operation_past_its_deadline_answers_system_timeout() -> None:
    body = await _run("{ slow }", _context(seconds=0.0))
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "SYSTEM_TIMEOUT"
