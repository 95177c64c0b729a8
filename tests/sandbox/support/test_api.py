"""The support sandbox's API surface: auth, paths, the rate limit, chaos, reset and bad input."""

from __future__ import annotations

import base64
import time

import orjson
import pytest

from tests.sandbox.support.helpers import IN_SUPPORT, _ticket, _walk, running

pytestmark = pytest.mark.anyio


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
