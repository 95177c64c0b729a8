"""The support sandbox's users and SLA policies."""

from __future__ import annotations

import pytest

from tests.sandbox.support.helpers import IN_SUPPORT, running

pytestmark = pytest.mark.anyio


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
