"""The simple-salesforce client against the CRM sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
import requests

from tests.sandbox.crm.helpers import CUSTOMERS, OPPS, TOKEN, running

pytestmark = pytest.mark.anyio


class _PlainHttp(requests.adapters.HTTPAdapter):
    """simple-salesforce always builds https:// URLs; the sandbox serves plain HTTP."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        assert request.url is not None
        request.url = "http://" + request.url.removeprefix("https://")
        return super().send(request, **kwargs)


async def test_simple_salesforce_works_against_the_sandbox(tmp_path: Path) -> None:
    simple_salesforce = pytest.importorskip("simple_salesforce")

    def use_client(instance: str) -> dict[str, Any]:
        session = requests.Session()
        session.mount("https://", _PlainHttp())
        sf = simple_salesforce.Salesforce(
            instance=instance, session_id=TOKEN, version="60.0", session=session
        )
        first = sf.query("SELECT Id, Name FROM Account ORDER BY Name")
        everything = sf.query_all("SELECT Id FROM Opportunity")
        created = sf.Account.upsert("ERP_Customer_Id__c/1999555", {"Name": "Client Lib GmbH"})
        updated = sf.Account.upsert("ERP_Customer_Id__c/1999555", {"Industry": "Energy"})
        by_xref = sf.Account.get_by_custom_id("ERP_Customer_Id__c", "1999555")
        record = sf.Account.get(by_xref["Id"])
        described = sf.Opportunity.describe()
        try:
            sf.query("SELECT Id FROM Account WHERE Name = 'x' OR Name LIKE '%")
        except simple_salesforce.exceptions.SalesforceMalformedRequest as exc:
            malformed = exc.content
        sf.session.close()
        return {
            "first": first,
            "everything": everything,
            "created": created,
            "updated": updated,
            "record": record,
            "described": described,
            "malformed": malformed,
            "usage": sf.api_usage,
        }

    async with running(tmp_path, app_options={"batch_size": 7}) as (api, _):
        instance = str(api.base_url.netloc.decode())
        result = await anyio.to_thread.run_sync(use_client, instance)
    assert result["first"]["totalSize"] == CUSTOMERS
    assert result["everything"]["totalSize"] == len(OPPS)
    assert len(result["everything"]["records"]) == len(OPPS)  # walked every batch of 7
    assert (result["created"], result["updated"]) == (201, 200)
    assert result["record"]["Name"] == "Client Lib GmbH"
    assert result["record"]["Industry"] == "Energy"
    assert "StageName" in {f["name"] for f in result["described"]["fields"]}
    assert result["malformed"][0]["errorCode"] == "MALFORMED_QUERY"
    assert result["usage"]["api-usage"].used > 0
