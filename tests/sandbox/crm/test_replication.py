"""The CRM sandbox's replication API: updated and deleted records by time window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.sandbox.crm.helpers import BASE, OPPS, _error, _iso, running

pytestmark = pytest.mark.anyio


async def test_updated_and_deleted_follow_the_replication_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(tmp_path) as (api, root):
        began = datetime.now(UTC).replace(second=0, microsecond=0)
        account = (await api.post("/sobjects/Account", json={"Name": "Feed GmbH"})).json()["id"]
        contact = await api.post(
            "/sobjects/Contact", json={"LastName": "Gone", "AccountId": account}
        )
        opp_id = OPPS[0][1].id
        assert (
            await api.patch(f"/sobjects/Opportunity/{opp_id}", json={"Name": "Fed renewal"})
        ).status_code == 204
        assert (await api.delete(f"/sobjects/Contact/{contact.json()['id']}")).status_code == 204

        # the current minute is never covered yet: move the clock two minutes on
        later = datetime.now(UTC) + timedelta(minutes=2)
        monkeypatch.setattr("sandbox.crm.api._now", lambda: later)
        covered = later.replace(second=0, microsecond=0)
        window = {"start": _iso(began - timedelta(minutes=1)), "end": _iso(later + timedelta(1))}

        updated = await api.get("/sobjects/Account/updated/", params=window)
        assert updated.status_code == 200, updated.text
        assert updated.json() == {
            "ids": [account],
            "latestDateCovered": covered.strftime("%Y-%m-%dT%H:%M:00.000+0000"),
        }
        opps = (await api.get("/sobjects/Opportunity/updated/", params=window)).json()
        assert opps["ids"] == [opp_id]
        gone = (await api.get("/sobjects/Contact/deleted/", params=window)).json()
        assert set(gone) == {"deletedRecords", "earliestDateAvailable", "latestDateCovered"}
        assert [r["id"] for r in gone["deletedRecords"]] == [contact.json()["id"]]
        assert gone["deletedRecords"][0]["deletedDate"].endswith("+0000")
        assert gone["earliestDateAvailable"] <= gone["deletedRecords"][0]["deletedDate"]
        assert gone["latestDateCovered"] == updated.json()["latestDateCovered"]

        # seconds are ignored: an end inside the minute the changes fell in covers none
        same_minute = {"start": window["start"], "end": _iso(began + timedelta(seconds=59))}
        rounded = (await api.get("/sobjects/Account/updated/", params=same_minute)).json()
        assert rounded == {
            "ids": [],
            "latestDateCovered": began.strftime("%Y-%m-%dT%H:%M:00.000+0000"),
        }
        # restarting from latestDateCovered: what came before is not repeated
        after = {"start": _iso(covered), "end": _iso(later + timedelta(1))}
        assert (await api.get("/sobjects/Account/updated/", params=after)).json()["ids"] == []

        # deleting an account logs its contacts and opportunities too
        await api.delete(f"/sobjects/Account/{account}")
        logged = (await api.get("/sobjects/Account/deleted/", params=window)).json()
        assert [r["id"] for r in logged["deletedRecords"]] == [account]

        _error(await api.get("/sobjects/Account/updated/"), 400, "MISSING_ARGUMENT")
        _error(
            await api.get("/sobjects/Account/deleted/", params={"start": window["start"]}),
            400,
            "MISSING_ARGUMENT",
        )
        old = {"start": _iso(began - timedelta(days=31)), "end": window["end"]}
        _error(
            await api.get("/sobjects/Account/updated/", params=old), 400, "INVALID_REPLICATION_DATE"
        )
        backwards = {"start": window["end"], "end": window["start"]}
        _error(
            await api.get("/sobjects/Account/deleted/", params=backwards),
            400,
            "INVALID_REPLICATION_DATE",
        )
        junk = {"start": "yesterday", "end": window["end"]}
        _error(
            await api.get("/sobjects/Account/updated/", params=junk),
            400,
            "INVALID_REPLICATION_DATE",
        )
        _error(await api.get("/sobjects/Nope/updated/", params=window), 404, "NOT_FOUND")
        _error(
            await api.post("/sobjects/Account/updated/", params=window), 405, "METHOD_NOT_ALLOWED"
        )

        stats = (await root.get("/_sandbox/stats")).json()
        assert stats["by_route"][f"GET {BASE}/sobjects/Account/updated/"] >= 3
