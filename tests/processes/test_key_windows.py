"""A create redelivered after the vendor's idempotency-key window creates nothing new.

Stripe keeps an Idempotency-Key 24 hours and Zendesk 2 hours; a dead letter replayed a
week later, or a late lease recovery, comes after that. The sandboxes here forget their
keys at once, so only the connector's own look-up stands between a redelivery and a
second subscription or ticket. Checked in the sandboxes' own data over real HTTP.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from actors import messages as m
from canonical import System
from tests.processes.stack import sandbox_stack

pytestmark = pytest.mark.anyio

BILLING_AUTH = {"Authorization": "Bearer sk_test_crosswalk"}
SUPPORT_AUTH = ("agent@example.com/token", "sandbox")


@pytest.fixture(autouse=True)
def keys_forgotten_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sandbox.billing._http.IDEMPOTENCY_TTL", -1.0)
    monkeypatch.setattr("sandbox.support.tickets.IDEMPOTENCY_TTL", -1.0)


async def ask(stack: object, system: System, message: m.Message) -> object:
    actor = stack.systems[system]  # type: ignore[attr-defined]
    return await actor.ask(message, priority=m.Priority.TRANSACTIONAL, timeout=10)


async def test_subscription_and_ticket_redelivered_after_the_key_window(tmp_path: Path) -> None:
    async with sandbox_stack(tmp_path, run_dispatcher=False) as stack:
        company = stack.demo.companies[0]
        key = "op_late.billing_subscription"
        create = m.CreateSubscription(
            idempotency_key=key,
            customer_id=company.billing_id,
            items=(("price_core_monthly", 1),),
            metadata={"erp_order": "5000001"},
            first_delivery=True,
        )
        first = await ask(stack, System.BILLING, create)
        again = await ask(
            stack,
            System.BILLING,
            dataclasses.replace(create, first_delivery=False),
        )
        assert again.id == first.id  # type: ignore[attr-defined]
        subs = (
            await stack.sandbox.get(
                f"{stack.urls[System.BILLING]}/v1/subscriptions",
                params={"customer": company.billing_id, "status": "all", "limit": 100},
                headers=BILLING_AUTH,
            )
        ).json()["data"]
        assert [s["id"] for s in subs if s["metadata"].get("crosswalk_key") == key] == [first.id]  # type: ignore[attr-defined]

        ticket = m.CreateCase(
            idempotency_key="op_late.support_case",
            organization_id=str(company.support_id),
            subject="Invoice looks wrong",
            description="Total differs from the order",
            external_id="cw-op_late",
            first_delivery=True,
        )
        opened = await ask(stack, System.SUPPORT, ticket)
        reopened = await ask(
            stack, System.SUPPORT, dataclasses.replace(ticket, first_delivery=False)
        )
        assert reopened.id == opened.id  # type: ignore[attr-defined]
        tickets = (
            await stack.sandbox.get(
                f"{stack.urls[System.SUPPORT]}/api/v2/tickets",
                params={"external_id": "cw-op_late"},
                auth=SUPPORT_AUTH,
            )
        ).json()["tickets"]
        assert len(tickets) == 1
