"""The write path through the GraphQL schema: scopes, coded errors, idempotency by header
or argument, Query.operation, Query.deadLetters, replayDeadLetter, Subscription.operation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from actors import messages as m
from actors.errors import Rejected
from canonical import System
from gateway.governance.clients import Client
from gateway.governance.policies import load_policies
from gateway.graphql.context import Context
from gateway.graphql.schema import build_schema
from gateway.store import MessageStatus, OperationStatus, Store
from tests.processes.fakes import FakeSystems, World
from tests.processes.helpers import dispatching, wait_for
from tests.support.paths import ROOT

pytestmark = pytest.mark.anyio

SCHEMA = build_schema()
WIDGET = Client(
    "demo-widget",
    "widget",
    frozenset(
        {
            "customer:write",
            "opportunity:write",
            "case:write",
            "subscription:write",
            "operation:read",
        }
    ),
)
PORTAL = Client("demo-portal", "portal", frozenset({"customer:read", "operation:read"}))
OPS = Client("demo-ops", "ops", frozenset({"*"}))

CLOSE = """
mutation Close($input: CloseOpportunityInput!, $key: String) {
  closeOpportunity(input: $input, idempotencyKey: $key) {
    id status correlationId customerId reason
    steps { name system status attempts }
  }
}
"""
OPERATION = "query($id: ID!) { operation(id: $id) { id status reason steps { name status } } }"
DEAD = "{ deadLetters { items { id step system reason operationId } nextCursor } }"
REPLAY = "mutation($id: ID!) { replayDeadLetter(id: $id) { replayed operation { status } } }"


@dataclass
class Runtime:
    store: Store
    systems: Any
    settings: Any = None
    policies: Any = None


@pytest.fixture
def runtime(store: Store, systems: FakeSystems) -> Runtime:
    return Runtime(store=store, systems=systems, policies=load_policies(ROOT / "policies"))


async def run(
    runtime: Runtime,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    client: Client = WIDGET,
    key: str | None = None,
) -> Any:
    context = Context(
        runtime=runtime, client=client, correlation_id="corr-gql", idempotency_key=key
    )
    return await SCHEMA.execute(query, variable_values=variables, context_value=context)


async def test_close_opportunity_mutation_and_operation_query(
    runtime: Runtime, world: World, store: Store, systems: FakeSystems
) -> None:
    world.add_opportunity("006G", "1000001")
    result = await run(runtime, CLOSE, {"input": {"opportunityId": "006G"}}, key="hdr-1")
    assert result.errors is None, result.errors
    op = result.data["closeOpportunity"]
    assert op["status"] == "PENDING"
    assert op["correlationId"] == "corr-gql"
    assert op["steps"][0]["name"] == "erp_order"
    assert op["steps"][0]["system"] == "ERP"
    # the widget retries (header key): the same answer
    again = await run(runtime, CLOSE, {"input": {"opportunityId": "006G"}}, key="hdr-1")
    assert again.data["closeOpportunity"] == op
    # same key, other payload
    other = await run(
        runtime,
        CLOSE,
        {"input": {"opportunityId": "006G", "lines": [{"product": "CW-ENT"}]}},
        key="hdr-1",
    )
    assert other.errors[0].extensions["code"] == "IDEMPOTENCY_MISMATCH"
    async with dispatching(store, systems):
        await wait_for(store, op["id"])
    seen = await run(runtime, OPERATION, {"id": op["id"]})
    assert seen.data["operation"]["status"] == "SUCCEEDED"
    # another client's operation is not shown, not even that it exists
    hidden = await run(runtime, OPERATION, {"id": op["id"]}, client=PORTAL)
    assert hidden.errors is None
    assert hidden.data["operation"] is None


async def test_scope_and_validation_errors(runtime: Runtime, world: World, store: Store) -> None:
    world.add_opportunity("006H", "1000002")
    forbidden = await run(runtime, CLOSE, {"input": {"opportunityId": "006H"}}, client=PORTAL)
    assert forbidden.errors[0].extensions["code"] == "FORBIDDEN"
    invalid = await run(
        runtime,
        CLOSE,
        {
            "input": {"opportunityId": "006H", "lines": [{"product": "CW-NOPE", "quantity": 2}]},
            "key": "arg-1",
        },
    )
    error = invalid.errors[0]
    assert error.extensions["code"] == "VALIDATION_FAILED"
    assert error.extensions["fields"] == [
        {"field": "lines[0].product", "reason": error.extensions["fields"][0]["reason"]}
    ]
    assert "CW-NOPE" in error.extensions["fields"][0]["reason"]
    assert (await store.list_operations()).items == ()
    onboard = """mutation { onboardCustomer(input: {name: "Acme", taxId: "nope", country: "DE",
      paymentTerms: "NT30"}) { id } }"""
    bad = await run(runtime, onboard)
    assert {f["field"] for f in bad.errors[0].extensions["fields"]} == {"name", "taxId"}
    mixed = await run(runtime, CLOSE, {"input": {"opportunityId": "006H"}, "key": "a"}, key="b")
    assert mixed.errors[0].extensions["code"] == "VALIDATION_FAILED"


async def test_dead_letters_replay_and_subscription(
    runtime: Runtime, world: World, store: Store, systems: FakeSystems
) -> None:
    world.add_opportunity("006D", "1000003")
    systems[System.CRM].fail(
        lambda msg: Rejected("crm", "field locked")
        if isinstance(msg, m.UpdateOpportunity)
        else None,
        times=1,
    )
    created = await run(runtime, CLOSE, {"input": {"opportunityId": "006D"}, "key": "d-1"})
    op_id = created.data["closeOpportunity"]["id"]
    seen: list[str] = []
    subscription = await SCHEMA.subscribe(
        f'subscription {{ operation(id: "{op_id}") {{ status steps {{ name status }} }} }}',
        context_value=Context(runtime=runtime, client=WIDGET, correlation_id="sub"),
    )
    async with dispatching(store, systems), anyio.create_task_group() as tg:

        async def follow() -> None:
            async for update in subscription:  # type: ignore[union-attr]
                assert update.errors is None, update.errors
                seen.append(update.data["operation"]["status"])

        tg.start_soon(follow)
        await wait_for(store, op_id, (OperationStatus.NEEDS_ATTENTION,))
        assert (await run(runtime, DEAD)).errors[0].extensions["code"] == "FORBIDDEN"
        dead = await run(runtime, DEAD, client=OPS)
        items = dead.data["deadLetters"]["items"]
        assert [(d["step"], d["operationId"]) for d in items] == [("crm_stamp", op_id)]
        assert "field locked" in items[0]["reason"]
        replay = await run(runtime, REPLAY, {"id": items[0]["id"]}, client=OPS)
        assert replay.data["replayDeadLetter"] == {
            "replayed": True,
            "operation": {"status": "RUNNING"},
        }
        with anyio.fail_after(10):
            await wait_for(store, op_id)
    assert seen[0] == "PENDING"
    assert "NEEDS_ATTENTION" in seen
    assert seen[-1] == "SUCCEEDED"


DISCARD = """mutation($id: ID!, $reason: String!) {
  discardDeadLetter(id: $id, reason: $reason) {
    discarded operation { status reason steps { name status } }
  }
}"""


async def test_discarding_a_dead_letter_fails_its_operation_and_unblocks_the_customer(
    runtime: Runtime, world: World, store: Store, systems: FakeSystems
) -> None:
    world.add_opportunity("006X", "1000002")
    world.add_opportunity("006Y", "1000002")
    systems[System.CRM].fail(
        lambda msg: Rejected("crm", "field locked")
        if isinstance(msg, m.UpdateOpportunity)
        else None,
        times=1,
    )
    first = await run(runtime, CLOSE, {"input": {"opportunityId": "006X"}, "key": "x-1"})
    op_id = first.data["closeOpportunity"]["id"]
    async with dispatching(store, systems):
        await wait_for(store, op_id, (OperationStatus.NEEDS_ATTENTION,))
        # the same customer's next operation waits behind the dead letter
        second = await run(runtime, CLOSE, {"input": {"opportunityId": "006Y"}, "key": "y-1"})
        second_id = second.data["closeOpportunity"]["id"]
        dead = (await run(runtime, DEAD, client=OPS)).data["deadLetters"]["items"]
        dead_id = dead[0]["id"]
        # a widget may replay but not discard; a discard needs a reason
        forbidden = await run(runtime, DISCARD, {"id": dead_id, "reason": "x"})
        assert forbidden.errors[0].extensions["code"] == "FORBIDDEN"
        empty = await run(runtime, DISCARD, {"id": dead_id, "reason": "  "}, client=OPS)
        assert empty.errors[0].extensions["code"] == "VALIDATION_FAILED"
        assert (await store.list_messages(status=MessageStatus.DEAD)) != []
        answer = await run(
            runtime, DISCARD, {"id": dead_id, "reason": "stamped by hand in the CRM"}, client=OPS
        )
        assert answer.errors is None, answer.errors
        result = answer.data["discardDeadLetter"]
        assert result["discarded"] is True
        assert result["operation"]["status"] == "FAILED"
        assert "stamped by hand in the CRM" in result["operation"]["reason"]
        steps = {s["name"]: s["status"] for s in result["operation"]["steps"]}
        assert steps["crm_stamp"] == "FAILED"
        assert steps["erp_order"] == "SUCCEEDED"
        # the customer's queue moves on
        await wait_for(store, second_id)
    again = await run(runtime, DISCARD, {"id": dead_id, "reason": "twice"}, client=OPS)
    assert again.data["discardDeadLetter"]["discarded"] is False
    audit = [
        e
        for e in await store.audit_trace(subject=f"operation:{op_id}")
        if e.action == "outbox.discard"
    ]
    assert len(audit) == 1
    assert audit[0].actor == "demo-ops"
    assert audit[0].detail["reason"] == "stamped by hand in the CRM"
