"""Credit notes in the billing sandbox (Stripe API v1) against real HTTP on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sandbox.billing.helpers import _error, _walk, running

pytestmark = pytest.mark.anyio


async def _open_invoice(api: httpx.AsyncClient) -> dict[str, Any]:
    """A new customer's finalized invoice of 5000.00 net (+19% tax), still open."""
    customer = (await api.post("/v1/customers", data={"name": "Credit GmbH"})).json()
    draft = (await api.post("/v1/invoices", data={"customer": customer["id"]})).json()
    item = await api.post(
        "/v1/invoiceitems",
        data={"customer": customer["id"], "invoice": draft["id"], "amount": "500000"},
    )
    assert item.status_code == 200, item.text
    final = await api.post(f"/v1/invoices/{draft['id']}/finalize")
    assert final.status_code == 200, final.text
    invoice: dict[str, Any] = final.json()
    assert invoice["status"] == "open"
    assert invoice["total"] == 595000
    return invoice


async def test_a_credit_note_on_an_open_invoice_lowers_what_is_due(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):
        invoice = await _open_invoice(api)
        created = await api.post(
            "/v1/credit_notes",
            data={
                "invoice": invoice["id"],
                "amount": "100000",
                "reason": "order_change",
                "memo": "Two seats fewer",
                "metadata[crosswalk_key]": "op-1:credit",
            },
        )
        assert created.status_code == 200, created.text
        note = created.json()
        assert note["id"].startswith("cn_")
        assert note["object"] == "credit_note"
        assert note["amount"] == note["total"] == 100000
        assert note["currency"] == invoice["currency"]
        assert note["customer"] == invoice["customer"]
        assert note["invoice"] == invoice["id"]
        assert note["number"] == f"{invoice['number']}-CN-01"
        assert note["reason"] == "order_change"
        assert note["memo"] == "Two seats fewer"
        assert note["status"] == "issued"
        assert note["type"] == "pre_payment"
        assert note["pre_payment_amount"] == 100000
        assert note["post_payment_amount"] == 0
        assert note["metadata"] == {"crosswalk_key": "op-1:credit"}
        assert note["created"] > 0
        assert note["lines"]["object"] == "list"
        [line] = note["lines"]["data"]
        assert line["object"] == "credit_note_line_item"
        assert line["type"] == "custom_line_item"
        assert line["amount"] == 100000

        after = (await api.get(f"/v1/invoices/{invoice['id']}")).json()
        assert after["status"] == "open"
        assert after["pre_payment_credit_notes_amount"] == 100000
        assert after["amount_due"] == after["amount_remaining"] == 495000
        assert after["total"] == 595000

        fetched = await api.get(f"/v1/credit_notes/{note['id']}")
        assert fetched.json() == note
        lines = await api.get(f"/v1/credit_notes/{note['id']}/lines")
        assert [x["id"] for x in lines.json()["data"]] == [line["id"]]
        expanded = await api.get(f"/v1/credit_notes/{note['id']}", params={"expand[]": "invoice"})
        assert expanded.json()["invoice"]["id"] == invoice["id"]
        missing = await api.get("/v1/credit_notes/cn_nothing")
        assert missing.status_code == 404
        assert _error(missing)["code"] == "resource_missing"


async def test_custom_lines_and_crediting_the_rest_marks_the_invoice_paid(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (api, _):
        invoice = await _open_invoice(api)
        lines = await api.post(
            "/v1/credit_notes",
            data={
                "invoice": invoice["id"],
                "lines[0][type]": "custom_line_item",
                "lines[0][unit_amount]": "2500",
                "lines[0][quantity]": "4",
                "lines[0][description]": "Goodwill",
            },
        )
        assert lines.status_code == 200, lines.text
        note = lines.json()
        assert note["amount"] == 10000
        [line] = note["lines"]["data"]
        assert (line["unit_amount"], line["quantity"], line["description"]) == (2500, 4, "Goodwill")

        mismatch = await api.post(
            "/v1/credit_notes",
            data={
                "invoice": invoice["id"],
                "amount": "1",
                "lines[0][type]": "custom_line_item",
                "lines[0][unit_amount]": "2",
                "lines[0][description]": "x",
            },
        )
        assert mismatch.status_code == 400
        assert _error(mismatch)["param"] == "amount"

        rest = await api.post(
            "/v1/credit_notes", data={"invoice": invoice["id"], "amount": "585000"}
        )
        assert rest.status_code == 200, rest.text
        assert rest.json()["number"].endswith("-CN-02")
        paid = (await api.get(f"/v1/invoices/{invoice['id']}")).json()
        assert paid["status"] == "paid"
        assert paid["amount_due"] == paid["amount_remaining"] == paid["amount_paid"] == 0
        events = [e["type"] for e in await _walk(api, "/v1/events")]
        assert events[:3] == ["invoice.paid", "invoice.updated", "credit_note.created"]


async def test_credit_on_a_paid_invoice_is_post_payment_and_capped_by_the_total(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as (api, _):
        invoice = await _open_invoice(api)
        paid = await api.post(
            f"/v1/invoices/{invoice['id']}/pay", data={"paid_out_of_band": "true"}
        )
        assert paid.json()["status"] == "paid"
        note = await api.post(
            "/v1/credit_notes",
            data={"invoice": invoice["id"], "amount": "95000", "reason": "duplicate"},
        )
        assert note.status_code == 200, note.text
        assert note.json()["type"] == "post_payment"
        assert note.json()["post_payment_amount"] == 95000
        assert note.json()["out_of_band_amount"] == 95000
        after = (await api.get(f"/v1/invoices/{invoice['id']}")).json()
        assert after["post_payment_credit_notes_amount"] == 95000
        assert after["amount_paid"] == 595000
        assert after["amount_remaining"] == 0

        too_much = await api.post(
            "/v1/credit_notes", data={"invoice": invoice["id"], "amount": "500001"}
        )
        assert too_much.status_code == 400
        error = _error(too_much)
        assert error["type"] == "invalid_request_error"
        assert error["param"] == "amount"
        assert "exceed" in error["message"]
        exact = await api.post(
            "/v1/credit_notes", data={"invoice": invoice["id"], "amount": "500000"}
        )
        assert exact.status_code == 200, exact.text


async def test_refused_requests_name_the_parameter(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):
        customer = (await api.post("/v1/customers", data={"name": "Draft AG"})).json()
        draft = (await api.post("/v1/invoices", data={"customer": customer["id"]})).json()
        cases: list[tuple[dict[str, str], str]] = [
            ({"amount": "100"}, "invoice"),
            ({"invoice": "in_nothing", "amount": "100"}, "invoice"),
            ({"invoice": draft["id"], "amount": "100"}, "invoice"),
            ({"invoice": draft["id"], "amount": "100", "reason": "bored"}, "reason"),
            ({"invoice": draft["id"], "lines[0][type]": "invoice_line_item"}, "lines[0][type]"),
        ]
        for data, param in cases:
            refused = await api.post("/v1/credit_notes", data=data)
            assert refused.status_code == 400, (data, refused.text)
            assert _error(refused)["param"] == param, data
        invoice = await _open_invoice(api)
        nothing = await api.post("/v1/credit_notes", data={"invoice": invoice["id"]})
        assert _error(nothing)["param"] == "amount"
        zero = await api.post("/v1/credit_notes", data={"invoice": invoice["id"], "amount": "0"})
        assert _error(zero)["param"] == "amount"
        no_unit = await api.post(
            "/v1/credit_notes",
            data={
                "invoice": invoice["id"],
                "lines[0][type]": "custom_line_item",
                "lines[0][description]": "x",
            },
        )
        assert _error(no_unit)["param"] == "lines[0][unit_amount]"
        assert (await api.get(f"/v1/invoices/{invoice['id']}")).json()["amount_remaining"] == 595000


async def test_void_gives_the_amount_back_once(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):
        invoice = await _open_invoice(api)
        note = (
            await api.post("/v1/credit_notes", data={"invoice": invoice["id"], "amount": "5000"})
        ).json()
        voided = await api.post(f"/v1/credit_notes/{note['id']}/void")
        assert voided.status_code == 200, voided.text
        assert voided.json()["status"] == "void"
        assert voided.json()["voided_at"]
        after = (await api.get(f"/v1/invoices/{invoice['id']}")).json()
        assert after["amount_remaining"] == after["amount_due"] == 595000
        assert after["pre_payment_credit_notes_amount"] == 0
        again = await api.post(f"/v1/credit_notes/{note['id']}/void")
        assert again.status_code == 400
        # a voided note no longer counts against the total
        full = await api.post(
            "/v1/credit_notes", data={"invoice": invoice["id"], "amount": "595000"}
        )
        assert full.status_code == 200, full.text
        assert full.json()["number"].endswith("-CN-02")
        stuck = await api.post(f"/v1/credit_notes/{full.json()['id']}/void")
        assert stuck.status_code == 400
        assert _error(stuck)["code"] == "invoice_not_editable"
        events = [e["type"] for e in await _walk(api, "/v1/events")]
        assert "credit_note.voided" in events
        voided_event = next(
            e for e in await _walk(api, "/v1/events") if e["type"] == "credit_note.voided"
        )
        assert voided_event["data"]["object"]["id"] == note["id"]


async def test_list_by_invoice_pages_newest_first(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):
        invoice = await _open_invoice(api)
        other = await _open_invoice(api)
        ids = []
        for n in range(5):
            made = await api.post(
                "/v1/credit_notes", data={"invoice": invoice["id"], "amount": str(100 + n)}
            )
            ids.append(made.json()["id"])
        await api.post("/v1/credit_notes", data={"invoice": other["id"], "amount": "100"})
        page = (
            await api.get("/v1/credit_notes", params={"invoice": invoice["id"], "limit": 2})
        ).json()
        assert page["object"] == "list"
        assert page["url"] == "/v1/credit_notes"
        assert page["has_more"] is True
        assert [n["id"] for n in page["data"]] == ids[::-1][:2]
        walked = await _walk(api, "/v1/credit_notes", invoice=invoice["id"])
        assert [n["id"] for n in walked] == ids[::-1]
        everything = await _walk(api, "/v1/credit_notes")
        assert len(everything) == 6


async def test_idempotency_key_replays_one_credit_note(tmp_path: Path) -> None:
    async with running(tmp_path) as (api, _):
        invoice = await _open_invoice(api)
        data = {"invoice": invoice["id"], "amount": "7000"}
        headers = {"Idempotency-Key": "credit-1"}
        first = await api.post("/v1/credit_notes", data=data, headers=headers)
        second = await api.post("/v1/credit_notes", data=data, headers=headers)
        assert second.headers["Idempotent-Replayed"] == "true"
        assert second.json() == first.json()
        other = await api.post("/v1/credit_notes", data={**data, "amount": "7001"}, headers=headers)
        assert other.status_code == 400
        assert _error(other)["type"] == "idempotency_error"
        listed = await _walk(api, "/v1/credit_notes", invoice=invoice["id"])
        assert len(listed) == 1
        after = (await api.get(f"/v1/invoices/{invoice['id']}")).json()
        assert after["amount_remaining"] == 595000 - 7000
        created = [e for e in await _walk(api, "/v1/events") if e["type"] == "credit_note.created"]
        assert len(created) == 1
        assert created[0]["request"]["idempotency_key"] == "credit-1"
