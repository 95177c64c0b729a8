"""The support sandbox (Zendesk Support API v2) against real HTTP on loopback."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.app import SandboxConfig
from sandbox.demo import generate
from sandbox.support import create_app
from tests.servers import serve

pytestmark = pytest.mark.anyio

AUTH = "Basic " + base64.b64encode(b"agent@example.com/token:sandbox").decode()
CUSTOMERS = 20
DEMO = generate(CUSTOMERS, 42)
IN_SUPPORT = [c for c in DEMO.companies if c.in_support]
TICKET_KEYS = {
    "id", "url", "external_id", "type", "subject", "description", "priority", "status",
    "requester_id", "assignee_id", "organization_id", "tags", "custom_fields", "created_at",
    "updated_at",
}  # fmt: skip
ORG_KEYS = {
    "id", "url", "external_id", "name", "domain_names", "details", "notes", "group_id",
    "shared_tickets", "shared_comments", "tags", "organization_fields", "created_at",
    "updated_at",
}  # fmt: skip


def _config(tmp_path: Path, **changes: object) -> SandboxConfig:
    config = SandboxConfig.for_system(
        "support", data_dir=tmp_path, gateway_url=None, customers=CUSTOMERS
    )
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


@asynccontextmanager
async def running(
    tmp_path: Path, *, rate_limit: int = 700, export_rate_limit: int = 1000, **changes: object
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """(api client on /api/v2 with credentials, bare client on the root)."""
    app = create_app(
        _config(tmp_path, **changes), rate_limit=rate_limit, export_rate_limit=export_rate_limit
    )
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url + "/api/v2", headers={"Authorization": AUTH}) as api,
        httpx.AsyncClient(base_url=url) as root,
    ):
        yield api, root


async def _walk(api: httpx.AsyncClient, path: str, key: str, size: int) -> list[dict]:
    items: list[dict] = []
    params: dict[str, str] = {"page[size]": str(size)}
    for _ in range(100):
        body = (await api.get(path, params=params)).json()
        assert set(body) == {key, "meta", "links"}
        items.extend(body[key])
        if not body["meta"]["has_more"]:
            assert body["links"]["next"] is None
            return items
        assert body["links"]["next"].startswith("http")
        params = {"page[size]": str(size), "page[after]": body["meta"]["after_cursor"]}
    raise AssertionError("pagination did not end")


def _ticket(**fields: object) -> dict:
    return {"ticket": {"subject": "Printer offline", "comment": {"body": "It is off."}, **fields}}


# ---------------------------------------------------------------- auth and headers


async def test_auth_schemes_and_the_vendor_401_body(tmp_path):
    async with running(tmp_path) as (api, root):
        assert (await root.get("/api/v2/users/me")).json() == {"error": "Couldn't authenticate you"}
        wrong = "Basic " + base64.b64encode(b"agent@example.com/token:nope").decode()
        for header in (wrong, "Bearer nope", "Basic !!!", "Digest x"):
            answer = await root.get("/api/v2/tickets", headers={"Authorization": header})
            assert answer.status_code == 401
            assert answer.json() == {"error": "Couldn't authenticate you"}
            assert answer.headers["X-Rate-Limit"] == "700"
        bearer = await root.get("/api/v2/users/me", headers={"Authorization": "Bearer sandbox"})
        assert bearer.status_code == 200
        assert bearer.json()["user"]["email"] == "agent@example.com"
        basic = await api.get("/users/me")
        assert basic.status_code == 200
        assert int(basic.headers["X-Rate-Limit-Remaining"]) < 700


async def test_paths_may_end_in_dot_json_and_unknown_endpoints_are_404(tmp_path):
    async with running(tmp_path) as (api, _):
        org = IN_SUPPORT[0]
        answer = await api.get(f"/organizations/{org.support_id}.json")
        assert answer.status_code == 200
        assert answer.json()["organization"]["url"].endswith(
            f"/organizations/{org.support_id}.json"
        )
        missing = await api.get("/no_such_thing")
        assert missing.status_code == 404
        assert missing.json() == {"error": "InvalidEndpoint", "description": "Not found"}


# ---------------------------------------------------------------- organizations


async def test_organizations_render_the_demo_world_and_skip_missing_in_support(tmp_path):
    async with running(tmp_path) as (api, _):
        orgs = await _walk(api, "/organizations", "organizations", 7)
        assert [o["id"] for o in orgs] == sorted(c.support_id for c in IN_SUPPORT)
        assert len(IN_SUPPORT) < CUSTOMERS  # the demo plants one company missing in support
        by_id = {o["id"]: o for o in orgs}
        for company in IN_SUPPORT:
            org = by_id[company.support_id]
            assert set(org) == ORG_KEYS
            assert org["external_id"] == company.bp
            assert org["name"] == company.name
            fields = org["organization_fields"]
            assert fields["entitlement_status"] == company.entitlement_status
            assert fields["support_tier"] == company.support_tier
            ends = company.entitlement_ends
            assert fields["entitlement_ends"] == (ends.isoformat() if ends else None)
            assert org["created_at"].endswith("Z")
        gone = next(c for c in DEMO.companies if not c.in_support)
        found = await api.get("/organizations/search", params={"external_id": gone.bp})
        assert found.json()["organizations"] == []
        assert (await api.get(f"/organizations/{gone.support_id}")).status_code == 404


async def test_cursor_pagination_backwards_limits_and_bad_cursors(tmp_path):
    async with running(tmp_path) as (api, _):
        first = (await api.get("/organizations", params={"page[size]": 5})).json()
        second = (
            await api.get(
                "/organizations",
                params={"page[size]": 5, "page[after]": first["meta"]["after_cursor"]},
            )
        ).json()
        assert second["links"]["prev"] is not None
        back = (
            await api.get(
                "/organizations",
                params={"page[size]": 5, "page[before]": second["meta"]["before_cursor"]},
            )
        ).json()
        assert [o["id"] for o in back["organizations"]] == [o["id"] for o in first["organizations"]]
        too_big = await api.get("/organizations", params={"page[size]": 101})
        assert too_big.status_code == 400
        assert too_big.json()["error"] == "InvalidPaginationParameter"
        for bad in ("not-a-cursor", "%%%", base64.b64encode(b"id:x").decode()):
            answer = await api.get("/tickets", params={"page[after]": bad})
            assert answer.status_code == 400
        default = (await api.get("/tickets", params={"page[size]": 100})).json()
        assert len(default["tickets"]) <= 100
        offset = (await api.get("/organizations", params={"per_page": 4, "page": 2})).json()
        assert offset["count"] == len(IN_SUPPORT)
        assert len(offset["organizations"]) == 4
        assert offset["next_page"]
        assert offset["previous_page"]


async def test_show_many_search_and_autocomplete(tmp_path):
    async with running(tmp_path) as (api, _):
        a, b = IN_SUPPORT[0], IN_SUPPORT[1]
        many = await api.get(
            "/organizations/show_many", params={"ids": f"{a.support_id},{b.support_id},999"}
        )
        assert [o["id"] for o in many.json()["organizations"]] == [a.support_id, b.support_id]
        by_key = await api.get("/organizations/show_many", params={"external_ids": a.bp})
        assert by_key.json()["organizations"][0]["id"] == a.support_id
        too_many = ",".join(str(n) for n in range(1, 102))
        assert (
            await api.get("/organizations/show_many", params={"ids": too_many})
        ).status_code == 400
        assert (await api.get("/organizations/show_many", params={"ids": "1,x"})).status_code == 400
        found = await api.get("/organizations/search", params={"external_id": a.bp})
        assert [o["id"] for o in found.json()["organizations"]] == [a.support_id]
        named = await api.get("/organizations/search", params={"name": a.name.upper()})
        assert [o["id"] for o in named.json()["organizations"]] == [a.support_id]
        assert (await api.get("/organizations/search")).status_code == 400
        prefix = a.name[:4]
        auto = (await api.get("/organizations/autocomplete", params={"name": prefix})).json()
        assert a.support_id in [o["id"] for o in auto["organizations"]]
        assert all(
            any(w.lower().startswith(prefix.lower()) for w in o["name"].split())
            for o in auto["organizations"]
        )
        assert (
            await api.get("/organizations/autocomplete", params={"name": "a"})
        ).status_code == 400


async def test_create_or_update_matches_external_id_then_name(tmp_path):
    async with running(tmp_path) as (api, _):
        body = {"organization": {"name": "Fresh Co GmbH", "external_id": "1099999"}}
        created = await api.post("/organizations/create_or_update", json=body)
        assert created.status_code == 201
        org = created.json()["organization"]
        assert set(org) == ORG_KEYS
        renamed = {"organization": {"name": "Fresh Company GmbH", "external_id": "1099999"}}
        updated = await api.post("/organizations/create_or_update", json=renamed)
        assert updated.status_code == 200
        assert updated.json()["organization"]["id"] == org["id"]
        assert updated.json()["organization"]["name"] == "Fresh Company GmbH"
        by_name = {"organization": {"name": "fresh company gmbh", "notes": "matched by name"}}
        again = await api.post("/organizations/create_or_update", json=by_name)
        assert again.status_code == 200
        assert again.json()["organization"]["id"] == org["id"]
        duplicate = await api.post(
            "/organizations", json={"organization": {"name": IN_SUPPORT[0].name}}
        )
        assert duplicate.status_code == 422
        assert duplicate.json()["details"]["name"][0]["error"] == "DuplicateValue"
        plain = await api.post("/organizations", json={"organization": {"name": "Plain Org"}})
        assert plain.status_code == 201
        assert plain.headers["Location"].endswith(".json")


async def test_entitlement_fields_validate_and_update(tmp_path):
    async with running(tmp_path) as (api, _):
        org_id = IN_SUPPORT[0].support_id
        ok = await api.put(
            f"/organizations/{org_id}",
            json={
                "organization": {
                    "organization_fields": {
                        "entitlement_status": "at_risk",
                        "entitlement_ends": "2027-01-31",
                    }
                }
            },
        )
        assert ok.status_code == 200
        fields = ok.json()["organization"]["organization_fields"]
        assert fields["entitlement_status"] == "at_risk"
        assert fields["entitlement_ends"] == "2027-01-31"
        assert fields["support_tier"] == IN_SUPPORT[0].support_tier  # untouched keys kept
        bad = await api.put(
            f"/organizations/{org_id}",
            json={
                "organization": {
                    "organization_fields": {
                        "entitlement_status": "gold",
                        "support_tier": "platinum",
                        "entitlement_ends": "next year",
                        "colour": "red",
                    }
                }
            },
        )
        assert bad.status_code == 422
        body = bad.json()
        assert body["error"] == "RecordInvalid"
        assert body["description"] == "Record validation errors"
        assert set(body["details"]) == {
            "organization_fields.entitlement_status",
            "organization_fields.support_tier",
            "organization_fields.entitlement_ends",
            "organization_fields.colour",
        }
        after = (await api.get(f"/organizations/{org_id}")).json()["organization"]
        assert after["organization_fields"]["entitlement_status"] == "at_risk"
        assert (await api.put("/organizations/1", json={"organization": {}})).status_code == 404


# ---------------------------------------------------------------- tickets


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


# ---------------------------------------------------------------- users and SLA policies


async def test_users_and_create_or_update(tmp_path):
    async with running(tmp_path) as (api, _):
        org = IN_SUPPORT[0].support_id
        body = {
            "user": {
                "name": "Ann Example",
                "email": "ann@example.org",
                "organization_id": org,
                "role": "end-user",
            }
        }
        created = await api.post("/users", json=body)
        assert created.status_code == 201
        user = created.json()["user"]
        assert user["organization_id"] == org
        merged = await api.post(
            "/users/create_or_update",
            json={"user": {"email": "ANN@example.org", "external_id": "crm-77"}},
        )
        assert merged.status_code == 200
        assert merged.json()["user"]["id"] == user["id"]
        by_external = await api.post(
            "/users/create_or_update", json={"user": {"external_id": "crm-77", "name": "Ann E."}}
        )
        assert by_external.json()["user"]["id"] == user["id"]
        new = await api.post(
            "/users/create_or_update", json={"user": {"name": "Bo", "email": "bo@example.org"}}
        )
        assert new.status_code == 201
        bad = await api.post(
            "/users", json={"user": {"name": "X", "email": "nope", "role": "boss"}}
        )
        assert bad.status_code == 422
        assert set(bad.json()["details"]) == {"email", "role"}
        taken = await api.put(
            f"/users/{new.json()['user']['id']}", json={"user": {"email": "ann@example.org"}}
        )
        assert taken.json()["details"]["email"][0]["error"] == "DuplicateValue"
        listed = (await api.get("/users", params={"role": "end-user", "per_page": 100})).json()
        assert all(u["role"] == "end-user" for u in listed["users"])
        orgs_with_user = {u["organization_id"] for u in listed["users"]}
        assert {c.support_id for c in IN_SUPPORT} <= orgs_with_user


async def test_sla_policies_per_support_tier(tmp_path):
    async with running(tmp_path) as (api, _):
        body = (await api.get("/slas/policies")).json()
        policies = body["sla_policies"]
        tiers = [p["filter"]["all"][0]["value"] for p in policies]
        assert tiers == ["enterprise", "premium", "standard"]
        for policy in policies:
            assert {
                "id",
                "url",
                "title",
                "description",
                "position",
                "filter",
                "policy_metrics",
            } <= set(policy)
            assert set(policy["filter"]) == {"all", "any"}
            metrics = {(m["priority"], m["metric"]) for m in policy["policy_metrics"]}
            assert metrics == {
                (p, m)
                for p in ("urgent", "high", "normal", "low")
                for m in ("first_reply_time", "next_reply_time")
            }
        urgent = {
            p["filter"]["all"][0]["value"]: next(
                m["target"] for m in p["policy_metrics"]
                if m["priority"] == "urgent" and m["metric"] == "first_reply_time"
            )
            for p in policies
        }  # fmt: skip
        assert urgent["enterprise"] < urgent["premium"] < urgent["standard"]
        one = await api.get(f"/slas/policies/{policies[0]['id']}")
        assert one.json()["sla_policy"] == policies[0]
        assert (await api.get("/slas/policies/1")).status_code == 404


# ---------------------------------------------------------------- rate limit and chaos


async def test_built_in_rate_limit_answers_429_with_retry_after(tmp_path):
    async with running(tmp_path, rate_limit=3) as (api, _):
        for remaining in ("2", "1", "0"):
            answer = await api.get("/users/me")
            assert answer.status_code == 200
            assert answer.headers["X-Rate-Limit"] == "3"
            assert answer.headers["X-Rate-Limit-Remaining"] == remaining
        limited = await api.get("/users/me")
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.headers["X-Rate-Limit-Remaining"] == "0"
        assert limited.text == "Number of allowed API requests per minute exceeded"


async def test_chaos_modes(tmp_path):
    async with running(tmp_path) as (api, root):
        await root.put("/_sandbox/chaos", json={"outage": True})
        down = await api.get("/users/me")
        assert down.status_code == 503
        assert down.headers["connection"] == "close"
        await root.put("/_sandbox/chaos", json={"outage": False, "latency_ms": [60, 80]})
        started = time.perf_counter()
        assert (await api.get("/users/me")).status_code == 200
        assert time.perf_counter() - started >= 0.06
        await root.put("/_sandbox/chaos", json={"latency_ms": [0, 0], "error_rate": 1.0})
        failed = await api.get("/users/me")
        assert failed.status_code == 500
        assert failed.json()["error"] == "InternalError"
        await root.put("/_sandbox/chaos", json={"error_rate": 0.0, "throttle": True})
        throttled = await api.get("/users/me")
        assert throttled.status_code == 429
        assert int(throttled.headers["Retry-After"]) >= 1
        await root.put("/_sandbox/chaos", json={"throttle": False, "malformed_rate": 1.0})
        broken = await api.get("/tickets")
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(broken.content)
        await root.put("/_sandbox/chaos", json={"malformed_rate": 0.0})
        assert (await api.get("/tickets")).json()["tickets"]
        stats = (await root.get("/_sandbox/stats")).json()
        assert stats["by_route"]["GET /api/v2/users/me"] == 4


async def test_reset_restores_the_seeded_world(tmp_path):
    async with running(tmp_path) as (api, root):
        org = IN_SUPPORT[0]
        before = (await api.get(f"/organizations/{org.support_id}")).json()
        created = (
            await api.post("/tickets", json=_ticket(), headers={"Idempotency-Key": "k"})
        ).json()
        await api.put(
            f"/organizations/{org.support_id}", json={"organization": {"name": "Renamed"}}
        )
        await root.put("/_sandbox/chaos", json={"throttle": True})
        assert (await root.post("/_sandbox/reset")).json() == {"reset": True}
        assert (await api.get(f"/tickets/{created['ticket']['id']}")).status_code == 404
        assert (await api.get(f"/organizations/{org.support_id}")).json() == before
        replay = await api.post(
            "/tickets", json=_ticket(subject="new"), headers={"Idempotency-Key": "k"}
        )
        assert replay.headers["x-idempotency-lookup"] == "miss"  # keys are part of the state


# ---------------------------------------------------------------- bad input


async def test_bad_input_gets_vendor_errors_never_500_and_leaves_the_store_alone(tmp_path):
    async with running(tmp_path) as (api, _):
        org_id = IN_SUPPORT[0].support_id
        before_tickets = len(await _walk(api, "/tickets", "tickets", 100))
        before_org = (await api.get(f"/organizations/{org_id}")).json()
        json_ct = {"Content-Type": "application/json"}
        attempts = [
            api.post("/tickets", content=b'{"ticket": {', headers=json_ct),
            api.post("/tickets", content=b"[1, 2]", headers=json_ct),
            api.post("/tickets", content=b"null", headers=json_ct),
            api.post("/tickets", content=b"\xff\xfe", headers=json_ct),
            api.post(
                "/tickets",
                content=b"ticket[subject]=x",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ),
            api.post("/tickets", content=b"{}", headers={"Content-Type": "text/plain"}),
            api.post("/tickets", json={"ticket": "subject"}),
            api.post("/tickets", json={"tickets": [{}]}),
            api.post("/tickets", json=_ticket(comment="just text")),
            api.post("/tickets", json=_ticket(subject="x" * 151)),
            api.post("/tickets", json=_ticket(external_id={"a": 1})),
            api.post("/tickets", json=_ticket(custom_fields=[{"id": 1, "value": {"x": 1}}])),
            api.post("/tickets", json=_ticket(assignee_id=10**30)),
            api.post("/tickets", content=b"x" * (2 << 20), headers=json_ct),
            api.put(f"/organizations/{org_id}", json={"organization": {"name": None}}),
            api.put(f"/organizations/{org_id}", json={"organization": {"organization_fields": []}}),
            api.put(f"/organizations/{org_id}", json={"organization": {"tags": [1, 2]}}),
            api.post(
                "/organizations/create_or_update", json={"organization": {"external_id": True}}
            ),
            api.post("/users", json={"user": {"name": ["x"]}}),
            api.get("/tickets", params={"page[size]": "-1"}),
            api.get("/tickets", params={"page[size]": "ten"}),
            api.get("/tickets", params={"page[after]": "a", "page[before]": "b"}),
            api.get("/tickets/show_many", params={"ids": "1;DROP"}),
            api.get("/tickets/show_many", params={"ids": "9" * 40}),
            api.get("/tickets", params={"page": "0"}),
        ]
        for attempt in attempts:
            answer = await attempt
            assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
            body = answer.json()
            assert isinstance(body, dict)
            assert body["error"]
        # query values are compared as plain text: injections find nothing and break nothing
        for injection in ("' OR 1=1 --", "1000000' OR '1'='1", "%' ; DROP TABLE docs; --"):
            for path, param in (
                ("/organizations/search", "name"),
                ("/organizations/search", "external_id"),
                ("/organizations/autocomplete", "name"),
            ):
                found = await api.get(path, params={param: injection})
                assert found.status_code == 200
                assert found.json()["organizations"] == []
        assert len(await _walk(api, "/tickets", "tickets", 100)) == before_tickets
        assert (await api.get(f"/organizations/{org_id}")).json() == before_org


# ---------------------------------------------------------------- webhooks


def _verify(secret: str, headers: httpx.Headers | dict, body: bytes) -> bool:
    """Zendesk's documented scheme, written from the docs: base64(HMAC-SHA256(ts + body))."""
    stamp = headers["x-zendesk-webhook-signature-timestamp"]
    mac = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return hmac.compare_digest(
        base64.b64encode(mac).decode(), headers["x-zendesk-webhook-signature"]
    )


async def test_webhooks_are_signed_and_only_follow_api_changes(tmp_path):
    send, receive = anyio.create_memory_object_stream[tuple[dict[str, str], bytes]](100)

    async def hook(request: Request) -> Response:
        send.send_nowait((dict(request.headers), await request.body()))
        return Response(status_code=200)

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    secret = "test-secret-for-support"

    async def next_event() -> tuple[dict, dict[str, str], bytes]:
        with anyio.fail_after(10):
            headers, body = await receive.receive()
        return orjson.loads(body), headers, body

    async with (
        send,
        receive,
        serve(receiver) as hook_url,
        running(tmp_path, webhook_url=f"{hook_url}/hook", webhook_secret=secret) as (api, _),
    ):
        org = IN_SUPPORT[0]
        created = await api.post(
            "/tickets", json=_ticket(organization_id=org.support_id, priority="low")
        )
        ticket_id = created.json()["ticket"]["id"]
        event, headers, raw = await next_event()  # the first event is ours: seeding sent none
        assert _verify(secret, headers, raw)
        assert not _verify("other-secret", headers, raw)
        assert not _verify(secret, headers, raw + b" ")
        stamp = datetime.strptime(
            headers["x-zendesk-webhook-signature-timestamp"], "%Y-%m-%dT%H:%M:%SZ"
        )
        assert abs(stamp.replace(tzinfo=UTC).timestamp() - time.time()) < 60
        assert event["type"] == "zen:event-type:ticket.created"
        assert event["subject"] == f"zen:ticket:{ticket_id}"
        assert {"account_id", "id", "time", "zendesk_event_version", "detail", "event"} <= set(
            event
        )
        assert event["detail"]["id"] == str(ticket_id)
        assert event["detail"]["organization_id"] == str(org.support_id)
        assert event["detail"]["status"] == "NEW"

        await api.put(
            f"/tickets/{ticket_id}", json={"ticket": {"status": "open", "priority": "high"}}
        )
        changes = {}
        for _ in range(2):
            event, headers, raw = await next_event()
            assert _verify(secret, headers, raw)
            changes[event["type"]] = event["event"]
        status = changes["zen:event-type:ticket.status_changed"]
        assert (status["previous"], status["current"]) == ("NEW", "OPEN")
        priority = changes["zen:event-type:ticket.priority_changed"]
        assert (priority["previous"], priority["current"]) == ("LOW", "HIGH")

        await api.put(
            f"/organizations/{org.support_id}",
            json={"organization": {"organization_fields": {"entitlement_status": "expired"}}},
        )
        event, headers, raw = await next_event()
        assert _verify(secret, headers, raw)
        assert event["type"] == "zen:event-type:organization.custom_field_changed"
        assert event["subject"] == f"zen:organization:{org.support_id}"
        assert event["event"]["custom_field"]["title"] == "entitlement_status"
        assert event["event"]["current"] == "expired"

        made = await api.post("/organizations", json={"organization": {"name": "Hooked Org"}})
        event, _, _ = await next_event()
        assert event["type"] == "zen:event-type:organization.created"
        assert event["detail"]["id"] == str(made.json()["organization"]["id"])


# ---------------------------------------------------------------- a real client


async def test_zenpy_works_against_the_sandbox(tmp_path, monkeypatch):
    """Zendesk's popular Python client, pointed at the sandbox by its own override switches."""
    zenpy = pytest.importorskip("zenpy")
    from zenpy.lib.api_objects import Comment, Organization, Ticket

    org = IN_SUPPORT[0]
    async with running(tmp_path) as (api, _):
        monkeypatch.setenv("ZENPY_FORCE_SCHEME", "http")
        monkeypatch.setenv("ZENPY_FORCE_NETLOC", api.base_url.netloc.decode())

        def use_zenpy() -> None:
            client = zenpy.Zenpy(subdomain="sandbox", email="agent@example.com", token="sandbox")
            assert client.users.me().email == "agent@example.com"
            read = client.organizations(id=org.support_id)
            assert (read.name, read.external_id) == (org.name, org.bp)
            assert read.organization_fields["support_tier"] == org.support_tier
            names = [o.name for o in client.organizations()]
            assert sorted(names) == sorted(c.name for c in IN_SUPPORT)
            audit = client.tickets.create(
                Ticket(
                    subject="Sent by zenpy",
                    comment=Comment(body="Created through the real client."),
                    organization_id=org.support_id,
                    priority="high",
                )
            )
            ticket = client.tickets(id=audit.ticket.id)
            assert (ticket.subject, ticket.description) == (
                "Sent by zenpy",
                "Created through the real client.",
            )
            ticket.status = "pending"
            client.tickets.update(ticket)
            assert client.tickets(id=ticket.id).status == "pending"
            listed = [t.id for t in client.tickets()]
            assert ticket.id in listed
            assert len(listed) == len(set(listed)) == 1 + sum(len(c.tickets) for c in IN_SUPPORT)
            made = client.organizations.create_or_update(
                Organization(name="Zenpy Org Ltd", external_id="1088888")
            )
            assert made.external_id == "1088888"
            tiers = [p.title for p in client.sla_policies()]
            assert tiers == ["Enterprise support", "Premium support", "Standard support"]

        await anyio.to_thread.run_sync(use_zenpy)


# ---------------------------------------------------------------- incremental exports


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
