"""The support sandbox's tickets: create, read, update, delete, validation, lists and idempotency
keys.
"""

from __future__ import annotations

from datetime import datetime

import anyio
import httpx
import pytest

from tests.sandbox.support.helpers import IN_SUPPORT, _ticket, _walk, running

pytestmark = pytest.mark.anyio


TICKET_KEYS = {
    "id", "url", "external_id", "type", "subject", "description", "priority", "status",
    "requester_id", "assignee_id", "organization_id", "tags", "custom_fields", "created_at",
    "updated_at",
}  # fmt: skip


async def test_tickets_create_read_update_and_delete(tmp_path):
    async with running(tmp_path) as (api, _):
        org = IN_SUPPORT[0]
        created = await api.post(
            "/tickets",
            json=_ticket(
                organization_id=org.support_id,
                priority="high",
                type="incident",
                tags=["VIP Customer"],
            ),
        )
        assert created.status_code == 201
        ticket = created.json()["ticket"]
        assert set(ticket) == TICKET_KEYS
        assert ticket["description"] == "It is off."
        assert ticket["status"] == "new"
        assert ticket["tags"] == ["vip", "customer"]
        assert ticket["organization_id"] == org.support_id
        assert ticket["requester_id"] is not None
        assert datetime.strptime(ticket["created_at"], "%Y-%m-%dT%H:%M:%SZ")
        assert created.headers["Location"] == ticket["url"]
        read = await api.get(f"/tickets/{ticket['id']}")
        assert read.json()["ticket"] == ticket
        described = await api.post(
            "/tickets", json={"ticket": {"description": "Plain description"}}
        )
        assert described.json()["ticket"]["subject"] == "Plain description"
        changed = await api.put(
            f"/tickets/{ticket['id']}", json={"ticket": {"status": "open", "priority": "urgent"}}
        )
        assert changed.status_code == 200
        assert changed.json()["ticket"]["status"] == "open"
        assert changed.json()["ticket"]["priority"] == "urgent"
        closed = await api.put(f"/tickets/{ticket['id']}", json={"ticket": {"status": "closed"}})
        assert closed.status_code == 200
        frozen = await api.put(f"/tickets/{ticket['id']}", json={"ticket": {"status": "open"}})
        assert frozen.status_code == 422
        assert "status" in frozen.json()["details"]
        assert (await api.delete(f"/tickets/{ticket['id']}")).status_code == 204
        missing = await api.get(f"/tickets/{ticket['id']}")
        assert missing.status_code == 404
        assert missing.json() == {"error": "RecordNotFound", "description": "Not found"}


async def test_ticket_validation_names_each_field(tmp_path):
    async with running(tmp_path) as (api, _):
        answer = await api.post(
            "/tickets",
            json={
                "ticket": {
                    "priority": "critical",
                    "status": "lost",
                    "type": "bug",
                    "organization_id": 1,
                    "requester_id": "me",
                    "tags": "a,b",
                    "custom_fields": [{"id": "x"}],
                    "colour": "red",
                }
            },
        )
        assert answer.status_code == 422
        details = answer.json()["details"]
        assert set(details) == {
            "priority", "status", "type", "organization_id", "requester_id", "tags",
            "custom_fields", "colour", "description",
        }  # fmt: skip
        for problems in details.values():
            assert problems[0]["description"]
            assert problems[0]["error"]


async def test_ticket_lists_show_many_and_organization_tickets(tmp_path):
    async with running(tmp_path) as (api, _):
        tickets = await _walk(api, "/tickets", "tickets", 9)
        expected = sorted(t.id for c in IN_SUPPORT for t in c.tickets)
        assert [t["id"] for t in tickets] == expected
        assert {t["priority"] for t in tickets} == {"urgent", "high", "normal", "low"}
        assert all(t["external_id"] is None for t in tickets)
        company = max(IN_SUPPORT, key=lambda c: len(c.tickets))
        own = await _walk(api, f"/organizations/{company.support_id}/tickets", "tickets", 2)
        assert sorted(t["id"] for t in own) == sorted(t.id for t in company.tickets)
        ids = [t["id"] for t in tickets[:3]]
        many = await api.get(
            "/tickets/show_many", params={"ids": ",".join(map(str, [*ids, 424242]))}
        )
        assert [t["id"] for t in many.json()["tickets"]] == ids
        assert (await api.get("/organizations/1/tickets")).status_code == 404


async def test_idempotency_key_replays_and_refuses_other_bodies(tmp_path):
    async with running(tmp_path) as (api, _):
        body = _ticket(external_id="op-1:case")
        first = await api.post("/tickets", json=body, headers={"Idempotency-Key": "key-1"})
        assert first.status_code == 201
        assert first.headers["x-idempotency-lookup"] == "miss"
        again = await api.post("/tickets", json=body, headers={"Idempotency-Key": "key-1"})
        assert again.status_code == 201
        assert again.headers["x-idempotency-lookup"] == "hit"
        assert again.json() == first.json()
        other = await api.post(
            "/tickets", json=_ticket(subject="Else"), headers={"Idempotency-Key": "key-1"}
        )
        assert other.status_code == 400
        assert other.json()["error"] == "IdempotentRequestError"
        assert other.json()["description"]
        mine = await api.get("/tickets", params={"external_id": "op-1:case"})
        assert len(mine.json()["tickets"]) == 1
    # the key is kept in the system's database: a restarted sandbox still replays it
    async with running(tmp_path) as (api, _):
        replay = await api.post("/tickets", json=body, headers={"Idempotency-Key": "key-1"})
        assert replay.headers["x-idempotency-lookup"] == "hit"
        assert replay.json()["ticket"]["id"] == first.json()["ticket"]["id"]


async def test_concurrent_creates_with_one_key_make_one_ticket(tmp_path):
    async with running(tmp_path) as (api, _):
        answers: list[httpx.Response] = []

        async def post() -> None:
            answers.append(
                await api.post("/tickets", json=_ticket(), headers={"Idempotency-Key": "same"})
            )

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(post)
        assert {a.json()["ticket"]["id"] for a in answers} == {answers[0].json()["ticket"]["id"]}
        assert sorted(a.headers["x-idempotency-lookup"] for a in answers) == ["hit"] * 4 + ["miss"]
