"""Each flow end to end against the real sandbox systems, through the real actors,
checked in the sandbox systems' own data (their own HTTP APIs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from canonical import System
from gateway.processes.context import Caller
from gateway.processes.errors import ValidationFailed
from gateway.store import OperationStatus
from tests.processes.helpers import wait_for
from tests.processes.stack import Stack, sandbox_stack

pytestmark = pytest.mark.anyio

WIDGET = Caller("demo-widget", "crm")
ERP_AUTH = ("sandbox", "sandbox")
BILLING_AUTH = {"Authorization": "Bearer sk_test_crosswalk"}
CRM_AUTH = {"Authorization": "Bearer 00DSANDBOX!crosswalk"}
SUPPORT_AUTH = ("agent@example.com/token", "sandbox")


def open_opportunities(stack: Stack) -> list[tuple[str, str]]:
    """(opportunity id, ERP partner) of every open demo opportunity."""
    return [
        (opp.id, company.bp)
        for company in stack.demo.companies
        for opp in company.opportunities
        if not opp.is_closed and company.in_support
    ]


async def erp_orders_for(stack: Stack, purchase_order: str) -> list[dict[str, object]]:
    answer = await stack.sandbox.get(
        f"{stack.urls[System.ERP]}/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder",
        params={"$filter": f"PurchaseOrderByCustomer eq '{purchase_order}'", "$format": "json"},
        auth=ERP_AUTH,
    )
    answer.raise_for_status()
    results: list[dict[str, object]] = answer.json()["d"]["results"]
    return results


async def test_close_opportunity_against_the_sandbox(tmp_path: Path) -> None:
    async with sandbox_stack(tmp_path) as stack:
        opp_id, bp = open_opportunities(stack)[0]
        view = await stack.write.submit(
            "closeOpportunity",
            {"opportunityId": opp_id},
            caller=WIDGET,
            idempotency_key="k1",
            correlation_id="c1",
        )
        done = await wait_for(
            stack.store,
            view.id,
            (OperationStatus.SUCCEEDED, OperationStatus.NEEDS_ATTENTION),
            timeout=30,
        )
        assert done.status is OperationStatus.SUCCEEDED, done.error
        orders = await erp_orders_for(stack, opp_id)
        assert len(orders) == 1
        order_id = orders[0]["SalesOrder"]
        opp = (
            await stack.sandbox.get(
                f"{stack.urls[System.CRM]}/services/data/v60.0/sobjects/Opportunity/{opp_id}",
                headers=CRM_AUTH,
            )
        ).json()
        assert opp["ERP_Order_Number__c"] == order_id
        assert opp["StageName"] == "Closed Won"
        company = next(c for c in stack.demo.companies if c.bp == bp)
        subs = (
            await stack.sandbox.get(
                f"{stack.urls[System.BILLING]}/v1/subscriptions",
                params={"customer": company.billing_id, "limit": 100},
                headers=BILLING_AUTH,
            )
        ).json()["data"]
        ours = [s for s in subs if s["metadata"].get("erp_order") == order_id]
        assert len(ours) == 1
        assert ours[0]["metadata"]["crm_opportunity_id"] == opp_id
        org = (
            await stack.sandbox.get(
                f"{stack.urls[System.SUPPORT]}/api/v2/organizations/{company.support_id}",
                auth=SUPPORT_AUTH,
            )
        ).json()["organization"]
        assert org["organization_fields"]["entitlement_status"] == "active"


async def test_onboard_customer_against_the_sandbox(tmp_path: Path) -> None:
    async with sandbox_stack(tmp_path) as stack:
        data = {
            "name": "Harborpeak Robotics GmbH",
            "taxId": "DE811234567",
            "country": "DE",
            "paymentTerms": "NT45",
            "email": "billing@harborpeak.example.com",
            "segment": "SMB",
            "industry": "Manufacturing",
        }
        view = await stack.write.submit(
            "onboardCustomer", data, caller=WIDGET, idempotency_key="on-1", correlation_id="c"
        )
        done = await wait_for(
            stack.store,
            view.id,
            (OperationStatus.SUCCEEDED, OperationStatus.NEEDS_ATTENTION),
            timeout=30,
        )
        assert done.status is OperationStatus.SUCCEEDED, done.error
        xref = await stack.store.get_xref(done.aggregate_key)
        assert xref is not None
        bp = xref.erp
        assert bp is not None
        partner = (
            await stack.sandbox.get(
                f"{stack.urls[System.ERP]}/sap/opu/odata/sap/API_BUSINESS_PARTNER/A_BusinessPartner('{bp}')",
                params={"$format": "json"},
                auth=ERP_AUTH,
            )
        ).json()["d"]
        assert partner["BusinessPartnerIDByExtSystem"] == done.input["externalId"]
        account = (
            await stack.sandbox.get(
                f"{stack.urls[System.CRM]}/services/data/v60.0/sobjects/Account/ERP_Customer_Id__c/{bp}",
                headers=CRM_AUTH,
            )
        ).json()
        assert account["Id"] == xref.crm
        customer = (
            await stack.sandbox.get(
                f"{stack.urls[System.BILLING]}/v1/customers/{xref.billing}", headers=BILLING_AUTH
            )
        ).json()
        assert customer["metadata"]["erp_bp"] == bp
        assert customer["metadata"]["crm_account_id"] == xref.crm
        org = (
            await stack.sandbox.get(
                f"{stack.urls[System.SUPPORT]}/api/v2/organizations/{xref.support}",
                auth=SUPPORT_AUTH,
            )
        ).json()["organization"]
        assert org["external_id"] == bp
        # the same request again (a widget retry) answers the same operation, creates nothing
        again = await stack.write.submit(
            "onboardCustomer", data, caller=WIDGET, idempotency_key="on-1", correlation_id="c"
        )
        assert again.id == view.id
        # a new key (or none) for the same company: refused, nothing written, nothing sent
        for key, variant in (
            ("on-2", data),
            (None, {**data, "name": "HarborPeak  ROBOTICS GmbH", "taxId": "DE811234568"}),
        ):
            with pytest.raises(ValidationFailed) as refused:
                await stack.write.submit(
                    "onboardCustomer", variant, caller=WIDGET, idempotency_key=key,
                    correlation_id="c",
                )  # fmt: skip
            [problem] = refused.value.problems
            assert problem.field == "taxId"
            assert f"erp:{bp}" in problem.reason
        assert len((await stack.store.list_operations()).items) == 1


async def test_onboarding_a_seeded_company_again_is_refused(tmp_path: Path) -> None:
    async with sandbox_stack(tmp_path) as stack:
        company = next(c for c in stack.demo.companies if c.country == "DE")
        data = {
            "name": "Another Name Entirely GmbH",
            "taxId": company.tax_id,
            "country": company.country,
            "paymentTerms": "NT30",
        }
        with pytest.raises(ValidationFailed) as refused:
            await stack.write.submit(
                "onboardCustomer", data, caller=WIDGET, idempotency_key=None, correlation_id="c"
            )
        assert f"erp:{company.bp}" in refused.value.problems[0].reason


async def test_open_and_escalate_case_against_the_sandbox(tmp_path: Path) -> None:
    async with sandbox_stack(tmp_path) as stack:
        company = next(
            c
            for c in stack.demo.companies
            if c.in_support and c.entitlement_status == "active" and c.support_tier == "premium"
        )
        opened = await stack.write.submit(
            "openCase",
            {
                "customerId": f"erp:{company.bp}",
                "subject": "Export times out",
                "description": "Since Monday",
                "type": "problem",
            },
            caller=WIDGET,
            idempotency_key="case-1",
            correlation_id="c",
        )
        done = await wait_for(
            stack.store,
            opened.id,
            (OperationStatus.SUCCEEDED, OperationStatus.NEEDS_ATTENTION),
            timeout=30,
        )
        assert done.status is OperationStatus.SUCCEEDED, done.error
        ticket_id = done.result["create_case"]["id"]
        ticket = (
            await stack.sandbox.get(
                f"{stack.urls[System.SUPPORT]}/api/v2/tickets/{ticket_id}", auth=SUPPORT_AUTH
            )
        ).json()["ticket"]
        assert ticket["organization_id"] == company.support_id
        assert ticket["priority"] == "high"  # premium tier SLA
        assert ticket["external_id"] == f"cw-{opened.id}"
        assert "entitlement_active" in ticket["tags"]
        assert "Invoices:" in ticket["description"]
        assert "Orders:" in ticket["description"]
        escalated = await stack.write.submit(
            "escalateCase",
            {
                "customerId": f"support:{company.support_id}",
                "caseId": str(ticket_id),
                "reason": "Blocking month end",
            },
            caller=WIDGET,
            idempotency_key="esc-1",
            correlation_id="c",
        )
        done = await wait_for(
            stack.store,
            escalated.id,
            (OperationStatus.SUCCEEDED, OperationStatus.NEEDS_ATTENTION),
            timeout=30,
        )
        assert done.status is OperationStatus.SUCCEEDED, done.error
        ticket = (
            await stack.sandbox.get(
                f"{stack.urls[System.SUPPORT]}/api/v2/tickets/{ticket_id}", auth=SUPPORT_AUTH
            )
        ).json()["ticket"]
        assert ticket["priority"] == "urgent"
        assert "escalated" in ticket["tags"]


async def test_renew_subscription_against_the_sandbox(tmp_path: Path) -> None:
    async with sandbox_stack(tmp_path) as stack:
        company, sub = next(
            (c, s)
            for c in stack.demo.companies
            for s in c.subscriptions
            if s.status == "active" and c.in_support
        )
        view = await stack.write.submit(
            "renewSubscription",
            {"customerId": f"billing:{company.billing_id}", "subscriptionId": sub.id},
            caller=WIDGET,
            idempotency_key="renew-1",
            correlation_id="c",
        )
        done = await wait_for(
            stack.store,
            view.id,
            (OperationStatus.SUCCEEDED, OperationStatus.NEEDS_ATTENTION),
            timeout=30,
        )
        assert done.status is OperationStatus.SUCCEEDED, done.error
        steps = {s.name: s.status.value for s in await stack.store.get_steps(view.id)}
        assert steps["crm_renewal"] == "SKIPPED"  # no renewal opportunity given
        new_end = done.result["billing_renewal"]["current_period_end"]
        assert new_end > sub.period_end.date().isoformat()
        order = done.result["erp_order"]
        orders = await erp_orders_for(stack, order["purchase_order"])
        assert [o["SalesOrder"] for o in orders] == [order["id"]]
        org = (
            await stack.sandbox.get(
                f"{stack.urls[System.SUPPORT]}/api/v2/organizations/{company.support_id}",
                auth=SUPPORT_AUTH,
            )
        ).json()["organization"]
        assert org["organization_fields"]["entitlement_ends"] == new_end
