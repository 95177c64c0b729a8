"""Fuzz the GraphQL endpoint from its own schema: no request may answer 5xx.

    .venv/bin/python scripts/fuzz_graphql.py [--url http://127.0.0.1:8000/graphql]
        [--key demo-ops-key] [--count 500] [--seed 1]

Reads the schema with the standard introspection query (as GraphiQL and code generators
do), then sends ``--count`` generated queries: random fields of Query with arguments of
the right type and random values (ids in every system's form and garbage, page sizes in
and out of range), random sub-selections, and mutated variants of each (a brace dropped,
an argument of the wrong type, a field that does not exist, aliases, fragments, a
deep or wide copy, variables of the wrong type). Every answer must be below 500, be JSON,
and carry ``extensions.code`` on each error. Prints a summary; exits 1 on any finding.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    build_client_schema,
    get_introspection_query,
    get_named_type,
)

__all__ = ["Fuzzer", "check_answer", "introspection_payload"]

IDS = [
    "erp:1000000",
    "erp:1000003",
    "billing:cus_0001",
    "crm:001Dn00000000AAAAA",
    "support:360000100000",
    "cw_0000000000000000",
    "erp:",
    ":",
    "",
    "erp:'; DROP TABLE x; --",
    "x" * 300,
    "erp:\u0000",
    "op_missing",
    "billing:%00",
]
STRINGS = ["Acme", "", "a" * 500, "\u00e9\u00e8", "' OR 1=1", "{}", "null", "\n"]
INTS = [0, 1, 5, 20, 100, 101, -1, 2**31, -(2**31) - 1, 10**12]


def introspection_payload() -> dict[str, Any]:
    return {"query": get_introspection_query(descriptions=True, input_value_deprecation=True)}


class Fuzzer:
    """Queries generated from ``schema`` with ``rng``."""

    def __init__(self, schema: GraphQLSchema, rng: random.Random, *, max_depth: int = 4) -> None:
        self.schema = schema
        self.rng = rng
        self.max_depth = max_depth

    # ---------------------------------------------------------------- values

    def value(self, kind: GraphQLInputType, depth: int = 0) -> str:
        if isinstance(kind, GraphQLNonNull):
            return self.value(kind.of_type, depth)
        if isinstance(kind, GraphQLList):
            items = [self.value(kind.of_type, depth + 1) for _ in range(self.rng.randint(0, 3))]
            return "[" + ", ".join(items) + "]"
        if isinstance(kind, GraphQLEnumType):
            return self.rng.choice([*kind.values, "NOT_A_VALUE"])
        if isinstance(kind, GraphQLInputObjectType):
            if depth > 3:
                return "{}"
            fields = [
                f"{name}: {self.value(field.type, depth + 1)}"
                for name, field in kind.fields.items()
                if isinstance(field.type, GraphQLNonNull) or self.rng.random() < 0.5
            ]
            return "{" + ", ".join(fields) + "}"
        assert isinstance(kind, GraphQLScalarType)
        if kind.name == "Int":
            return str(self.rng.choice(INTS))
        if kind.name == "Float":
            return self.rng.choice(["0.5", "-1.0", "1e300"])
        if kind.name == "Boolean":
            return self.rng.choice(["true", "false"])
        if kind.name == "ID":
            return _quote(self.rng.choice(IDS))
        return _quote(self.rng.choice(STRINGS))

    # ---------------------------------------------------------------- selections

    def selection(self, kind: Any, depth: int) -> str:
        named = get_named_type(kind)
        if isinstance(named, GraphQLUnionType):
            parts = [f"... on {t.name} {self.selection(t, depth)}" for t in named.types]
            return "{ __typename " + " ".join(parts) + " }"
        if not isinstance(named, GraphQLObjectType) or not hasattr(named, "fields"):
            return ""
        fields = list(named.fields.items())
        scalars = [n for n, f in fields if not _is_object(f.type)]
        objects = [(n, f) for n, f in fields if _is_object(f.type)]
        chosen = self.rng.sample(scalars, k=min(len(scalars), self.rng.randint(1, 4)))
        parts = list(chosen) or ["__typename"]
        if depth < self.max_depth:
            for name, field in self.rng.sample(
                objects, k=min(len(objects), self.rng.randint(0, 2))
            ):
                parts.append(self.field(name, field, depth + 1))
        return "{ " + " ".join(parts) + " }"

    def field(self, name: str, field: GraphQLField, depth: int) -> str:
        arguments = [
            f"{arg_name}: {self.value(arg.type)}"
            for arg_name, arg in field.args.items()
            if isinstance(arg.type, GraphQLNonNull) or self.rng.random() < 0.5
        ]
        args = f"({', '.join(arguments)})" if arguments else ""
        sub = self.selection(field.type, depth) if _is_object(field.type) else ""
        return f"{name}{args} {sub}".strip()

    def query(self) -> str:
        root = self.schema.query_type
        assert root is not None
        fields = [(n, f) for n, f in root.fields.items() if not n.startswith("__")]
        picked = self.rng.sample(fields, k=min(len(fields), self.rng.randint(1, 3)))
        return "{ " + " ".join(self.field(n, f, 1) for n, f in picked) + " }"

    # ---------------------------------------------------------------- mutations

    def mutate(self, query: str) -> dict[str, Any]:
        choice = self.rng.randrange(10)
        if choice == 0:  # drop one character
            i = self.rng.randrange(len(query))
            return {"query": query[:i] + query[i + 1 :]}
        if choice == 1:  # an unknown field
            return {"query": query.replace("{ ", "{ notAField ", 1)}
        if choice == 2:  # aliases
            return {"query": "{ " + " ".join(f"a{i}: {query[1:-1]}" for i in range(3)) + " }"}
        if choice == 3:  # through a fragment
            return {"query": "query { ...F } fragment F on Query " + query}
        if choice == 4:  # wrong variable types
            return {
                "query": "query($n: Int) { customers(first: $n) { nodes { id } } }",
                "variables": {"n": self.rng.choice(["ten", 1.5, None, [1], {"a": 1}, 10**20])},
            }
        if choice == 5:  # a deep copy of itself
            return {"query": query.replace("{ ", "{ " * 3, 1) + " }" * 2}
        if choice == 6:  # wrong parameter types
            return self.rng.choice(
                [{"query": 1}, {"query": query, "variables": "x"}, {"operationName": 3}]
            )
        if choice == 7:  # an operation name that is not there
            return {"query": query, "operationName": "Nope"}
        if choice == 8:  # a subscription over HTTP
            return {"query": 'subscription { operation(id: "op_1") { status } }'}
        return {"query": query}

    def payloads(self, count: int) -> Iterator[dict[str, Any]]:
        for i in range(count):
            query = self.query()
            yield {"query": query} if i % 2 == 0 else self.mutate(query)


def check_answer(status: int, body: Any) -> str | None:
    """What is wrong with one answer, or None."""
    if status >= 500:
        return f"HTTP {status}"
    if not isinstance(body, dict):
        return f"not a JSON object: {body!r}"[:200]
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        if not code:
            return f"an error without extensions.code: {error}"[:300]
        if code == "INTERNAL_ERROR":
            return f"INTERNAL_ERROR: {error}"[:300]
    return None


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    escaped = escaped.replace("\u0000", "\\u0000")
    return f'"{escaped}"'


def _is_object(kind: Any) -> bool:
    return isinstance(get_named_type(kind), GraphQLObjectType | GraphQLUnionType)


def schema_from(introspection: dict[str, Any]) -> GraphQLSchema:
    return build_client_schema(introspection["data"])


def main() -> int:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000/graphql")
    parser.add_argument("--key", default="demo-ops-key")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.key}"}
    with httpx.Client(timeout=30) as http:
        schema = schema_from(
            http.post(args.url, json=introspection_payload(), headers=headers).json()
        )
        fuzzer = Fuzzer(schema, random.Random(args.seed))
        findings: list[str] = []
        statuses: Counter[int] = Counter()
        for payload in fuzzer.payloads(args.count):
            response = http.post(args.url, json=payload, headers=headers)
            statuses[response.status_code] += 1
            try:
                body = response.json()
            except ValueError:
                body = response.text
            problem = check_answer(response.status_code, body)
            if problem:
                findings.append(f"{problem}\n  request: {payload}")
    print(f"{args.count} requests; statuses: {dict(sorted(statuses.items()))}")
    for finding in findings:
        print(finding)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
