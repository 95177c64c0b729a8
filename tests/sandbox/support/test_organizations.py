"""The support sandbox's organizations: the demo world, cursor pagination, show many, search,
create-or-update and entitlement fields.
"""

from __future__ import annotations

import base64

import pytest

from tests.sandbox.support.helpers import CUSTOMERS, DEMO, IN_SUPPORT, ORG_KEYS, _walk, running

pytestmark = pytest.mark.anyio


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
