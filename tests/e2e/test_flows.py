"""Flows started in the vendors' own screens, on `crosswalk up` with the sandboxes'
webhooks pointed at the gateway: every check reads the target systems' own APIs."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.upstack import UpStack, running_up

pytestmark = [pytest.mark.slow]

OPS = {"Authorization": "Bearer demo-ops-key"}
STRIPE = {"Authorization": "Bearer sk_test_crosswalk"}
SF = {"Authorization": "Bearer 00DSANDBOX!crosswalk"}
ZENDESK = ("agent@example.com/token", "sandbox")
GUARD = 30.0  # a hang guard; the benchmark measures how fast


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    with running_up(tmp_path_factory.mktemp("flows"), customers=40) as up:
        deadline = time.monotonic() + GUARD
        while not all(row["sync"]["loaded"] for row in systems(up)):
            assert time.monotonic() < deadline, "the read model never loaded"
            time.sleep(0.2)
        yield up


def systems(stack: UpStack) -> list[dict[str, Any]]:
    answer = httpx.post(
        f"{stack.base}/graphql",
        json={"query": "{ systems { system sync { loaded feeds { feed lastPassAt } } } }"},
        headers=OPS,
    )
    rows: list[dict[str, Any]] = answer.json()["data"]["systems"]
    return rows


def url(stack: UpStack, system: str, path: str) -> str:
    return f"http://127.0.0.1:{stack.ports[system]}{path}"


def identity(stack: UpStack, customer: str) -> dict[str, Any]:
    answer = httpx.post(
        f"{stack.base}/graphql",
        json={"query": "query($id: ID!) { customer(id: $id) "
                       "{ identity { erp billing crm support } } }",
              "variables": {"id": customer}},
        headers=OPS,
    )  # fmt: skip
    found: dict[str, Any] = answer.json()["data"]["customer"]["identity"]
    return found


def eventually(check: Callable[[], bool]) -> None:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < GUARD, "never happened"
        time.sleep(0.05)


def open_invoice_of_linked_customer(
    stack: UpStack, skip: int = 0
) -> tuple[dict[str, Any], dict[str, Any]]:
    invoices = httpx.get(
        url(stack, "billing", "/v1/invoices"),
        params={"status": "open", "limit": 100},
        headers=STRIPE,
    ).json()["data"]
    found = []
    for invoice in invoices:
        ids = identity(stack, f"billing:{invoice['customer']}")
        if ids["crm"] and ids["support"]:
            found.append((invoice, ids))
    return found[skip]


def organization_fields(stack: UpStack, org: str) -> dict[str, Any]:
    body = httpx.get(url(stack, "support", f"/api/v2/organizations/{org}.json"), auth=ZENDESK)
    fields: dict[str, Any] = body.json()["organization"]["organization_fields"]
    return fields


def account(stack: UpStack, account_id: str) -> dict[str, Any]:
    body = httpx.get(
        url(stack, "crm", f"/services/data/v60.0/sobjects/Account/{account_id}"), headers=SF
    )
    found: dict[str, Any] = body.json()
    return found


def fail_payments(stack: UpStack, customer: str, fail: bool) -> None:
    httpx.post(
        url(stack, "billing", f"/v1/customers/{customer}"),
        data={"metadata[sandbox_fail_payments]": "true" if fail else "false"},
        headers=STRIPE,
    ).raise_for_status()


def test_a_failed_then_paid_invoice_reaches_the_crm_and_support(stack: UpStack) -> None:
    invoice, ids = open_invoice_of_linked_customer(stack)
    fail_payments(stack, invoice["customer"], True)
    paid = httpx.post(url(stack, "billing", f"/v1/invoices/{invoice['id']}/pay"), headers=STRIPE)
    assert paid.status_code == 402
    eventually(
        lambda: organization_fields(stack, ids["support"])["entitlement_status"] == "at_risk"
    )
    tasks = httpx.get(
        url(stack, "crm", "/services/data/v60.0/query"),
        params={"q": f"SELECT Id, Subject, Priority FROM Task WHERE WhatId = '{ids['crm']}'"},
        headers=SF,
    ).json()["records"]
    assert [t["Subject"] for t in tasks] == [f"Payment failed: invoice {invoice['id']}"]
    assert tasks[0]["Priority"] == "High"

    fail_payments(stack, invoice["customer"], False)
    httpx.post(
        url(stack, "billing", f"/v1/invoices/{invoice['id']}/pay"), headers=STRIPE
    ).raise_for_status()
    eventually(lambda: organization_fields(stack, ids["support"])["entitlement_status"] == "active")
    eventually(lambda: organization_fields(stack, ids["support"])["billing_status"] == "paid")
    eventually(lambda: account(stack, ids["crm"])["Billing_Status__c"] == "paid")


def test_a_flow_whose_target_is_down_completes_when_it_is_back(stack: UpStack) -> None:
    invoice, ids = open_invoice_of_linked_customer(stack, skip=1)
    httpx.post(url(stack, "crm", "/_sandbox/chaos"), json={"outage": True}).raise_for_status()
    try:
        pay = url(stack, "billing", f"/v1/invoices/{invoice['id']}/pay")
        httpx.post(pay, headers=STRIPE).raise_for_status()
        time.sleep(2.0)  # the CRM step waits in the outbox (its retries back off)
        # the customer's later steps wait behind it (the outbox keeps a customer's order)
        assert organization_fields(stack, ids["support"])["billing_status"] != "paid"
    finally:
        httpx.post(url(stack, "crm", "/_sandbox/chaos"), json={"outage": False}).raise_for_status()
    eventually(lambda: account(stack, ids["crm"])["Billing_Status__c"] == "paid")
    eventually(lambda: organization_fields(stack, ids["support"])["billing_status"] == "paid")


def test_closed_won_in_the_crm_becomes_one_erp_order(stack: UpStack) -> None:
    crm = url(stack, "crm", "/services/data/v60.0")
    opportunity = httpx.get(
        f"{crm}/query",
        params={"q": "SELECT Id FROM Opportunity WHERE IsClosed = false ORDER BY Id LIMIT 1"},
        headers=SF,
    ).json()["records"][0]
    changed_at = time.time()
    won = httpx.patch(
        f"{crm}/sobjects/Opportunity/{opportunity['Id']}",
        json={"StageName": "Closed Won"},
        headers=SF,
    )
    assert won.status_code == 204

    def orders() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = httpx.get(
            url(stack, "erp", "/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder"),
            params={
                "$filter": f"PurchaseOrderByCustomer eq '{opportunity['Id']}'",
                "$format": "json",
            },
            auth=("sandbox", "sandbox"),
        ).json()["d"]["results"]
        return found

    eventually(lambda: len(orders()) == 1)

    def crm_pass_after_the_change() -> bool:
        row = next(r for r in systems(stack) if r["system"] == "CRM")
        passes = [f["lastPassAt"] for f in row["sync"]["feeds"] if f["feed"] == "opportunities"]
        from datetime import datetime

        return bool(passes[0]) and datetime.fromisoformat(passes[0]).timestamp() > changed_at + 1

    eventually(crm_pass_after_the_change)  # the catch-up has seen the deal too
    time.sleep(1.0)
    assert len(orders()) == 1
    stamped = httpx.get(f"{crm}/sobjects/Opportunity/{opportunity['Id']}", headers=SF).json()
    assert stamped["ERP_Order_Number__c"] == orders()[0]["SalesOrder"]


def test_a_new_ticket_gets_an_internal_note_from_the_other_systems(stack: UpStack) -> None:
    _, ids = open_invoice_of_linked_customer(stack, skip=2)
    ticket = httpx.post(
        url(stack, "support", "/api/v2/tickets.json"),
        json={"ticket": {"subject": "Invoice question", "comment": {"body": "Why?"},
                         "organization_id": int(ids["support"])}},
        auth=ZENDESK,
    ).json()["ticket"]  # fmt: skip

    def notes() -> list[dict[str, Any]]:
        body = httpx.get(
            url(stack, "support", f"/api/v2/tickets/{ticket['id']}/comments.json"), auth=ZENDESK
        )
        return [c for c in body.json()["comments"] if not c["public"]]

    eventually(lambda: len(notes()) == 1)
    note = notes()[0]["body"]
    assert "Entitlement:" in note
    assert "Open invoices:" in note
    assert "Latest ERP order:" in note


def test_our_own_writes_start_nothing_and_nothing_runs_twice(stack: UpStack) -> None:
    db = sqlite3.connect(stack.var_dir / "crosswalk.db")
    kinds = dict(
        db.execute(
            "SELECT kind, count(*) FROM operations WHERE client_id = 'crosswalk-events' "
            "GROUP BY kind"
        ).fetchall()
    )
    # the flows above wrote to the CRM and support; their echoes (CDC events with our
    # client's changeOrigin, organization updates) started no flow of their own
    assert kinds.get("paymentFailed") == 1
    assert kinds.get("invoicePaid") == 2
    assert kinds.get("ticketEnriched") == 1
    quote_to_cash = db.execute(
        "SELECT count(*) FROM operations WHERE kind = 'closeOpportunity'"
    ).fetchone()[0]
    assert quote_to_cash == 1


def test_an_invoice_finalized_in_billing_is_posted_in_the_erp_once(stack: UpStack) -> None:
    invoice, ids = open_invoice_of_linked_customer(stack, skip=3)
    customer = invoice["customer"]
    billing = url(stack, "billing", "/v1")
    httpx.post(
        f"{billing}/invoiceitems",
        data={"customer": customer, "amount": "12345", "currency": invoice["currency"],
              "description": "Consulting"},
        headers=STRIPE,
    ).raise_for_status()  # fmt: skip
    draft = httpx.post(
        f"{billing}/invoices",
        data={"customer": customer, "pending_invoice_items_behavior": "include"},
        headers=STRIPE,
    ).json()
    final = httpx.post(f"{billing}/invoices/{draft['id']}/finalize", headers=STRIPE)
    assert final.status_code == 200, final.text

    def documents() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = httpx.get(
            url(stack, "erp", "/sap/opu/odata/sap/API_BILLING_DOCUMENT_SRV/A_BillingDocument"),
            params={"$filter": f"PurchaseOrderByCustomer eq '{draft['id']}'", "$format": "json"},
            auth=("sandbox", "sandbox"),
        ).json()["d"]["results"]
        return found

    eventually(lambda: len(documents()) == 1)
    [document] = documents()
    assert document["SoldToParty"] == ids["erp"]
    assert document["AccountingPostingStatus"] == "C"
    total = final.json()["total"]  # the item plus the tax billing computed, in cents
    assert document["TotalGrossAmount"] == f"{total / 100:.2f}"
    eventually(lambda: account(stack, ids["crm"])["Billing_Status__c"] == "open")
    eventually(lambda: organization_fields(stack, ids["support"])["billing_status"] == "open")


def test_resolving_a_dispute_credits_billing_and_the_erp_and_tells_the_crm(
    stack: UpStack,
) -> None:
    invoice, ids = open_invoice_of_linked_customer(stack, skip=4)
    ticket = httpx.post(
        url(stack, "support", "/api/v2/tickets.json"),
        json={"ticket": {"subject": "Charged twice", "comment": {"body": "Please refund"},
                         "organization_id": int(ids["support"])}},
        auth=ZENDESK,
    ).json()["ticket"]  # fmt: skip
    mutation = """mutation($input: ResolveCaseInput!) {
      resolveCase(input: $input, idempotencyKey: "resolve-dispute-1") { id status } }"""
    variables = {
        "input": {
            "customerId": f"billing:{invoice['customer']}",
            "caseId": str(ticket["id"]),
            "resolution": "Refunded the duplicate charge.",
            "credit": {"invoiceId": invoice["id"], "amount": "10.00", "reason": "duplicate"},
        }
    }
    answer = httpx.post(
        f"{stack.base}/graphql",
        json={"query": mutation, "variables": variables},
        headers={"Authorization": "Bearer demo-widget-key"},
    ).json()
    assert "errors" not in answer, answer
    operation = answer["data"]["resolveCase"]["id"]

    def status() -> str:
        body = httpx.post(
            f"{stack.base}/graphql",
            json={"query": f'{{ operation(id: "{operation}") {{ status }} }}'},
            headers={"Authorization": "Bearer demo-widget-key"},
        ).json()
        found: str = body["data"]["operation"]["status"]
        return found

    eventually(lambda: status() == "SUCCEEDED")
    notes = httpx.get(
        url(stack, "billing", "/v1/credit_notes"), params={"invoice": invoice["id"]}, headers=STRIPE
    ).json()["data"]
    assert [(n["amount"], n["reason"]) for n in notes] == [(1000, "duplicate")]
    memos = httpx.get(
        url(stack, "erp", "/sap/opu/odata/sap/API_CREDIT_MEMO_REQUEST_SRV/A_CreditMemoRequest"),
        params={"$filter": f"PurchaseOrderByCustomer eq '{ticket['id']}-credit'",
                "$format": "json"},
        auth=("sandbox", "sandbox"),
    ).json()["d"]["results"]  # fmt: skip
    assert len(memos) == 1
    assert memos[0]["SoldToParty"] == ids["erp"]
    assert memos[0]["TotalNetAmount"] == "10.00"
    solved = httpx.get(url(stack, "support", f"/api/v2/tickets/{ticket['id']}.json"), auth=ZENDESK)
    assert solved.json()["ticket"]["status"] == "solved"

    def crm_tasks() -> list[str]:
        body = httpx.get(
            url(stack, "crm", "/services/data/v60.0/query"),
            params={"q": f"SELECT Subject, Status FROM Task WHERE WhatId = '{ids['crm']}'"},
            headers=SF,
        ).json()
        return [f"{t['Subject']}|{t['Status']}" for t in body["records"]]

    eventually(
        lambda: any(t.startswith(f"Case {ticket['id']} solved") and t.endswith("|Completed")
                    for t in crm_tasks())
    )  # fmt: skip


def test_a_case_crosswalk_opens_gets_no_note_of_its_own(stack: UpStack) -> None:
    _, ids = open_invoice_of_linked_customer(stack, skip=5)
    db = sqlite3.connect(stack.var_dir / "crosswalk.db")
    count = "SELECT count(*) FROM operations WHERE kind = 'ticketEnriched'"
    before = db.execute(count).fetchone()[0]
    mutation = """mutation($input: OpenCaseInput!) { openCase(input: $input) { id } }"""
    answer = httpx.post(
        f"{stack.base}/graphql",
        json={"query": mutation, "variables": {"input": {
            "customerId": f"erp:{ids['erp']}", "subject": "Opened by Crosswalk",
            "description": "From the widget"}}},
        headers={"Authorization": "Bearer demo-widget-key"},
    ).json()  # fmt: skip
    assert "errors" not in answer, answer

    def opened() -> bool:
        row = db.execute(
            "SELECT status FROM operations WHERE id = ?", (answer["data"]["openCase"]["id"],)
        ).fetchone()
        return bool(row) and row[0] == "SUCCEEDED"

    eventually(opened)
    time.sleep(1.5)  # the ticket.created webhook has been applied by now
    assert db.execute(count).fetchone()[0] == before  # its ticket.created started nothing
