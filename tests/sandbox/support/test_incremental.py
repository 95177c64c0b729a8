"""The support sandbox's incremental exports: ordering, deletions, time-based organizations and
their own rate limit.
"""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest

from sandbox.support import create_app
from tests.sandbox.support.helpers import AUTH, IN_SUPPORT, ORG_KEYS, _config, _ticket, running
from tests.servers import serve

pytestmark = pytest.mark.anyio


async def _export(api: httpx.AsyncClient, params: dict[str, str]) -> dict:
    answer = await api.get("/incremental/tickets/cursor.json", params=params)
    assert answer.status_code == 200, answer.text
    body: dict = answer.json()
    assert set(body) == {
        "tickets", "after_cursor", "after_url", "before_cursor", "before_url", "end_of_stream"
    }  # fmt: skip
    return body


async def test_ticket_export_is_ordered_gapless_and_shows_deletions(tmp_path, monkeypatch):
    async with running(tmp_path) as (api, root):
        made = [
            (await api.post("/tickets", json=_ticket(subject=f"feed {n}"))).json()["ticket"]
            for n in range(3)
        ]
        await api.put(f"/tickets/{made[0]['id']}", json={"ticket": {"priority": "high"}})
        assert (await api.delete(f"/tickets/{made[1]['id']}")).status_code == 204
        seeded = sum(len(c.tickets) for c in IN_SUPPORT)

        # changes of the last minute are not exported yet
        first = await _export(api, {"start_time": "0"})
        assert {t["id"] for t in made}.isdisjoint(t["id"] for t in first["tickets"])
        # the sandbox's clock, two minutes on; later writes are stamped by it too
        clock = {"now": time.time() + 120}
        monkeypatch.setattr("sandbox.support.incremental._now", lambda: clock["now"])
        monkeypatch.setattr(
            "sandbox.support.tickets.now_iso",
            lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock["now"])),
        )

        pages, params = [], {"start_time": "0", "per_page": "7"}
        while True:
            body = await _export(api, params)
            pages.append(body)
            assert body["after_url"].endswith(f"cursor={body['after_cursor']}&per_page=7")
            params = {"cursor": body["after_cursor"], "per_page": "7"}
            if body["end_of_stream"]:
                break
        tickets = [t for page in pages for t in page["tickets"]]
        assert len(tickets) == seeded + 3
        assert len({t["id"] for t in tickets}) == len(tickets)
        order = [(t["updated_at"], t["id"]) for t in tickets]
        assert order == sorted(order)
        assert {t["id"] for t in tickets[-3:]} == {t["id"] for t in made}
        by_id = {t["id"]: t for t in tickets}
        assert by_id[made[1]["id"]]["status"] == "deleted"
        assert by_id[made[0]["id"]]["priority"] == "high"
        assert (await api.get(f"/tickets/{made[1]['id']}")).status_code == 404

        # a restart from any cursor gives exactly the rest
        middle = pages[1]["after_cursor"]
        rest = []
        params = {"cursor": middle}
        while True:
            body = await _export(api, params)
            rest.extend(body["tickets"])
            params = {"cursor": body["after_cursor"]}
            if body["end_of_stream"]:
                break
        assert rest == tickets[14:]

        # at the end the cursor waits for new changes
        last = pages[-1]["after_cursor"]
        idle = await _export(api, {"cursor": last})
        assert idle["tickets"] == []
        assert idle["end_of_stream"] is True
        assert idle["after_cursor"] == last
        await api.put(f"/tickets/{made[2]['id']}", json={"ticket": {"status": "solved"}})
        clock["now"] += 120
        fresh = await _export(api, {"cursor": last})
        assert [t["id"] for t in fresh["tickets"]] == [made[2]["id"]]
        assert fresh["tickets"][0]["status"] == "solved"

        missing = await api.get("/incremental/tickets/cursor.json")
        assert missing.status_code == 400
        assert missing.json()["error"] == "InvalidValue"
        future = await api.get(
            "/incremental/tickets/cursor.json", params={"start_time": str(int(clock["now"]))}
        )
        assert future.status_code == 422
        assert "Too recent start_time" in future.json()["description"]
        bad = await api.get("/incremental/tickets/cursor.json", params={"cursor": "nope"})
        assert bad.status_code == 400
        stats = (await root.get("/_sandbox/stats")).json()
        assert stats["by_route"]["GET /api/v2/incremental/tickets/cursor"] >= 10


async def test_organization_export_is_time_based(tmp_path, monkeypatch):
    async with running(tmp_path) as (api, _):
        monkeypatch.setattr("sandbox.support.incremental._now", lambda: time.time() + 120)
        seen: list[dict] = []
        url: str | None = "/incremental/organizations.json?start_time=0&per_page=3"
        while url is not None:
            answer = await api.get(url.split("/api/v2", 1)[-1])
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert set(body) == {"organizations", "next_page", "end_time", "end_of_stream", "count"}
            assert body["count"] == len(body["organizations"])
            assert body["end_time"] == max(
                int(datetime.fromisoformat(o["updated_at"]).timestamp())
                for o in body["organizations"]
            )
            seen.extend(body["organizations"])
            assert (body["next_page"] is None) == body["end_of_stream"]
            url = body["next_page"]
        # pages restart at their last second, so an organization may come twice
        assert {o["id"] for o in seen} == {c.support_id for c in IN_SUPPORT}
        assert set(seen[0]) == ORG_KEYS


async def test_incremental_exports_have_their_own_rate_limit(tmp_path, monkeypatch):
    app = create_app(_config(tmp_path), rate_limit=700, export_rate_limit=3)
    monkeypatch.setattr("sandbox.support.incremental._now", lambda: time.time() + 120)
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url + "/api/v2", headers={"Authorization": AUTH}) as api,
    ):
        paths = ["/incremental/tickets/cursor.json", "/incremental/organizations.json"]
        for n in range(3):
            answer = await api.get(paths[n % 2], params={"start_time": "0"})
            assert answer.status_code == 200
            assert answer.headers["X-Rate-Limit"] == "3"
        refused = await api.get(paths[0], params={"start_time": "0"})
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        # the account's own budget is untouched
        assert (await api.get("/users/me")).status_code == 200


def test_the_incremental_export_budget_defaults_to_ten_a_minute():
    from sandbox.support import DEFAULT_EXPORT_RATE_LIMIT

    assert DEFAULT_EXPORT_RATE_LIMIT == 10
