"""The engine against strawberry's stock path: the same queries give the same answers.

``gateway.graphql.engine`` runs operations with a lean executor of its own (see its
docstring). Here every query runs twice on one runtime (the four sandbox systems, real
actors, a real store and the read model, caught up): through ``OperationRunner`` (admit,
then execute) and through strawberry's own ``Schema.execute``. The data and the
formatted errors must be equal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from canonical import System
from gateway.governance.clients import Client, QueryLimits
from gateway.governance.policies import load_policies
from gateway.graphql.context import Context, current_time
from gateway.graphql.engine import OperationRunner, Outcome, RequestParams, format_error
from gateway.graphql.schema import get_schema
from gateway.readmodel.kinds import Kind
from tests.readmodel.stack import RMStack, open_rm_stack
from tests.support.paths import POLICIES

pytestmark = pytest.mark.anyio

_UNLIMITED = {"requests_per_minute": 10**9, "cost_per_minute": 10**9}
EVERYTHING = Client(id="tester", name="tester", scopes=frozenset({"*"}), **_UNLIMITED)
READER = Client(id="reader", name="reader", scopes=frozenset({"customer:read"}), **_UNLIMITED)

CUSTOMER_360 = """
query Customer360($id: ID!) {
  customer(id: $id) {
    id
    name
    identity { canonicalId erp billing crm support }
    golden { name legalName taxId country paymentTerms segment industry owner supportTier
             sources { field system owner stale } }
    orders(first: 5) { totalCount nodes { id status netAmount currency } }
    subscriptions(status: ["active", "past_due"]) { totalCount nodes { id status } }
    invoices(first: 5) { totalCount nodes { id status total billingInvoiceId erpDocumentId } }
    balance { amountDue currency openInvoices }
    opportunities(first: 5) { totalCount nodes { id name stage amount } }
    cases(first: 5) { totalCount nodes { id subject priority status } }
    entitlements { nodes { status supportTier } }
    freshness { system linked stale reason errorCode source }
  }
}
"""

FRAGMENTS_AND_ALIASES = """
fragment Names on Customer360 { id name golden { ...Where } }
fragment Where on GoldenRecord { country paymentTerms }
query Two($first: ID!, $second: ID!, $withCases: Boolean!) {
  a: customer(id: $first) { ...Names kind: __typename
                            cases @include(if: $withCases) { nodes { id } } }
  b: customer(id: $second) { ... on Customer360 { id opportunities(first: 2) { nodes { id } } } }
  __typename
}
"""

LOOKUPS = """query($order: ID!, $invoice: ID!, $case: ID!) {
  order(id: $order) { order { id status } customer { id name } freshness { system stale } }
  invoice(id: $invoice) { invoice { id status total erpDocumentId } customer { id } }
  case(id: $case) { case { id subject status } customer { id } }
  products { code erpMaterial billingPrice supportTier }
  missing: order(id: "99999999") { order { id } }
}"""

ONBOARD = """mutation($input: OnboardCustomerInput!, $key: String) {
  onboardCustomer(input: $input, idempotencyKey: $key) { id status }
}"""


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[RMStack]:
    async with open_rm_stack(tmp_path) as opened:
        # the write path's policies too: the mutations validate against them
        opened.runtime.policies = load_policies(POLICIES)  # type: ignore[assignment]
        await opened.catch_up_all()
        yield opened


def _context(stack: RMStack, client: Client) -> Context:
    return Context(
        runtime=stack.runtime,
        client=client,
        correlation_id="parity",
        deadline=current_time() + 10.0,
    )


async def _engine(
    stack: RMStack, query: str, variables: dict[str, Any] | None, client: Client
) -> tuple[Any, list[dict[str, Any]]]:
    runner = OperationRunner(get_schema(), limits=QueryLimits())
    params = RequestParams(query, variables=variables)
    prepared = runner.admit(params, client, transport="POST")
    if isinstance(prepared, Outcome):
        body = prepared.body
    else:
        context = _context(stack, client)
        body = (await runner.execute(prepared[0], params, context)).body
        context.release()
    return body.get("data"), body.get("errors", [])


async def _stock(
    stack: RMStack, query: str, variables: dict[str, Any] | None, client: Client
) -> tuple[Any, list[dict[str, Any]]]:
    context = _context(stack, client)
    result = await get_schema().execute(query, variable_values=variables, context_value=context)
    context.release()
    return result.data, [format_error(e, "parity") for e in result.errors or ()]


async def _same(
    stack: RMStack,
    query: str,
    variables: dict[str, Any] | None = None,
    client: Client = EVERYTHING,
) -> tuple[Any, list[dict[str, Any]]]:
    """Both paths' (data, errors), asserted equal; the engine's returned."""
    engine = await _engine(stack, query, variables, client)
    stock = await _stock(stack, query, variables, client)
    assert engine == stock
    return engine


async def test_customer_360_by_every_system_id(stack: RMStack) -> None:
    for customer in ("erp:1000000", "erp:1000001"):
        data, errors = await _same(stack, CUSTOMER_360, {"id": customer})
        assert errors == []
        identity = data["customer"]["identity"]
        assert all(identity[s.value] for s in System)
        for system in ("billing", "crm", "support"):
            again, _ = await _same(stack, CUSTOMER_360, {"id": f"{system}:{identity[system]}"})
            assert again["customer"]["id"] == data["customer"]["id"]


async def test_fragments_aliases_directives_and_variables(stack: RMStack) -> None:
    variables = {"first": "erp:1000000", "second": "erp:1000002", "withCases": True}
    data, errors = await _same(stack, FRAGMENTS_AND_ALIASES, variables)
    assert errors == []
    assert data["a"]["kind"] == "Customer360"
    assert data["a"]["golden"]["country"]
    assert "cases" in data["a"]
    assert data["b"]["id"] != data["a"]["id"]
    data, _ = await _same(stack, FRAGMENTS_AND_ALIASES, {**variables, "withCases": False})
    assert "cases" not in data["a"]


async def test_look_ups_and_the_catalog(stack: RMStack) -> None:
    model = stack.model
    variables = {
        "order": next(i for i, _ in model.records(System.ERP, Kind.ORDER)),
        "invoice": next(i for i, _ in model.records(System.BILLING, Kind.INVOICE)),
        "case": next(i for i, _ in model.records(System.SUPPORT, Kind.CASE)),
    }
    data, errors = await _same(stack, LOOKUPS, variables)
    assert data["order"]["order"]["id"] == variables["order"]
    assert data["case"]["customer"]["id"]
    assert data["products"]
    assert [(e["path"], e["extensions"]["code"]) for e in errors] == [(["missing"], "NOT_FOUND")]


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ('{ customer(id: "erp:99999999") { id name } }', None, "NOT_FOUND"),
        ('{ customer(id: "nowhere:1") { id } }', None, "VALIDATION_FAILED"),
        ("{ customer(id: 1) { id nonsense } }", None, "VALIDATION_FAILED"),
        ("query($id: ID!) { customer(id: $id) { id } }", {}, "VALIDATION_FAILED"),
        ("query($n: Int) { customer(id: $n) { id } }", {"n": "x"}, "VALIDATION_FAILED"),
        ("{ customer { id } }", None, "VALIDATION_FAILED"),
        ("{ customer(id: ", None, "VALIDATION_FAILED"),
    ],
)
async def test_errors(
    stack: RMStack, query: str, variables: dict[str, Any] | None, code: str
) -> None:
    _, errors = await _same(stack, query, variables)
    assert errors
    assert {e["extensions"]["code"] for e in errors} == {code}


async def test_a_missing_scope_nulls_only_its_field(stack: RMStack) -> None:
    query = '{ customer(id: "erp:1000000") { id name invoices { totalCount } } }'
    data, errors = await _same(stack, query, client=READER)
    assert data["customer"]["id"]
    assert [(e["path"], e["extensions"]["code"]) for e in errors] == [
        (["customer", "invoices"], "FORBIDDEN")
    ]


@pytest.mark.parametrize(
    ("input", "key", "fields"),
    [
        (
            {"name": "Acme", "taxId": "not a tax id", "country": "ZZ", "paymentTerms": "NT30"},
            None,
            None,
        ),
        (
            {"name": "Acme GmbH", "taxId": "DE123456789", "country": "DE", "paymentTerms": "NT30"},
            "k" * 256,
            ["idempotencyKey"],
        ),
    ],
)
async def test_mutation_validation_errors(
    stack: RMStack, input: dict[str, Any], key: str | None, fields: list[str] | None
) -> None:
    data, errors = await _same(stack, ONBOARD, {"input": input, "key": key})
    assert data is None
    [error] = errors
    assert error["extensions"]["code"] == "VALIDATION_FAILED"
    named = [f["field"] for f in error["extensions"]["fields"]]
    assert named == fields if fields is not None else named


async def test_mutation_refusals_before_the_write_path(stack: RMStack) -> None:
    query = 'mutation { discardDeadLetter(id: "x", reason: "r") { discarded } }'
    _, errors = await _same(stack, query)
    assert [e["extensions"]["code"] for e in errors] == ["VALIDATION_FAILED"]
    _, errors = await _same(stack, ONBOARD, {"input": {"name": "A"}})
    assert len(errors) == 3  # taxId, country and paymentTerms missing
    assert {e["extensions"]["code"] for e in errors} == {"VALIDATION_FAILED"}
    _, errors = await _same(
        stack,
        ONBOARD,
        {"input": {"name": "A", "taxId": "DE1", "country": "DE", "paymentTerms": "NT30"}},
        client=READER,
    )
    assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"]
