"""Billing down during a burst of closeOpportunity: operations wait, nothing is
dead-lettered by the outage, and all complete after recovery, each exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from canonical import System
from gateway.governance.systems import BreakerPolicy
from gateway.processes.context import Caller
from gateway.store import MessageStatus, OperationStatus, StepStatus
from tests.processes.helpers import wait_for, wait_until
from tests.processes.stack import TEST_DISPATCH, sandbox_stack
from tests.processes.test_flows_sandbox import BILLING_AUTH, erp_orders_for, open_opportunities

pytestmark = pytest.mark.anyio

WIDGET = Caller("demo-widget", "crm")


async def test_billing_outage_during_a_burst(tmp_path: Path) -> None:
    breaker = {"fail_max": 3, "reset_timeout": 0.3, "success_threshold": 1, "half_open_calls": 1}
    async with sandbox_stack(
        tmp_path,
        customers=30,
        run_dispatcher=False,
        billing={"breaker": BreakerPolicy(**breaker)},
    ) as stack:
        opportunities = open_opportunities(stack)[:12]
        views = []
        for n, (opp_id, _) in enumerate(opportunities):
            views.append(
                await stack.write.submit(
                    "closeOpportunity",
                    {"opportunityId": opp_id},
                    caller=WIDGET,
                    idempotency_key=f"burst-{n}",
                    correlation_id=f"c{n}",
                )
            )
        await stack.chaos(System.BILLING, outage=True)
        await stack.start_dispatcher()
        billing = stack.systems[System.BILLING]
        # the outage lasts until every subscription has been held back several times
        await wait_until(lambda: billing.breaker_state != "closed", "the billing breaker to open")
        await wait_until(
            lambda: stack.dispatcher.deferred >= 4 * len(views), "deliveries deferred by the outage"
        )
        for view in views:
            operation = await stack.store.get_operation(view.id)
            assert operation is not None
            assert operation.status in (OperationStatus.PENDING, OperationStatus.RUNNING)
            steps = {s.name: s for s in await stack.store.get_steps(view.id)}
            for name in ("billing_subscription", "billing_subscription_annual"):
                assert steps[name].status in (StepStatus.PENDING, StepStatus.SKIPPED)
            assert steps["crm_stamp"].status is StepStatus.PENDING
        status = await stack.store.outbox_status()
        assert status.total(MessageStatus.DEAD) == 0
        assert stack.dispatcher.dead == 0
        await stack.chaos(System.BILLING, outage=False)
        for view in views:
            done = await wait_for(
                stack.store,
                view.id,
                (OperationStatus.SUCCEEDED, OperationStatus.NEEDS_ATTENTION),
                timeout=60,
            )
            assert done.status is OperationStatus.SUCCEEDED, done.error
        assert (await stack.store.outbox_status()).total(MessageStatus.DEAD) == 0
        retries = 0
        for view in views:
            for message in await stack.store.list_messages(operation_id=view.id):
                retries = max(retries, message.attempts)
        assert retries < TEST_DISPATCH.max_attempts
        for opp_id, bp in opportunities:
            orders = await erp_orders_for(stack, opp_id)
            assert len(orders) == 1
            company = next(c for c in stack.demo.companies if c.bp == bp)
            subs = (
                await stack.sandbox.get(
                    f"{stack.urls[System.BILLING]}/v1/subscriptions",
                    params={"customer": company.billing_id, "limit": 100},
                    headers=BILLING_AUTH,
                )
            ).json()["data"]
            opportunity = next(o for o in company.opportunities if o.id == opp_id)
            intervals = {stack.demo.product(code).interval for code in opportunity.products}
            ours = [s for s in subs if s["metadata"].get("crm_opportunity_id") == opp_id]
            assert len(ours) == len(intervals)  # one subscription per billing interval
