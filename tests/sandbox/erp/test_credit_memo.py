"""Credit memo requests (``API_CREDIT_MEMO_REQUEST_SRV``) in the ERP sandbox, over HTTP."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest

from tests.sandbox.erp.helpers import BD, EDM, EDMX, ROOT, SAP, csrf, erp, results, sap_error

pytestmark = pytest.mark.anyio

CMR = f"{ROOT}/API_CREDIT_MEMO_REQUEST_SRV"


async def _billing_document(client: httpx.AsyncClient) -> dict[str, Any]:
    [doc] = results(await client.get(f"{BD}/A_BillingDocument", params={"$top": "1"}))
    return doc


def _request(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = {
        "CreditMemoRequestType": "CR",
        "SalesOrganization": "1010",
        "SoldToParty": doc["SoldToParty"],
        "PurchaseOrderByCustomer": "CW-CREDIT-1",
        "SDDocumentReason": "002",
        "TotalNetAmount": "125.5",
        "TransactionCurrency": "EUR",
        "ReferenceSDDocument": doc["BillingDocument"],
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


async def test_metadata_declares_the_credit_memo_request_set(tmp_path):
    async with erp(tmp_path) as client:
        document = await client.get(f"{CMR}/", params={"$format": "json"})
        assert document.json()["d"]["EntitySets"] == ["A_CreditMemoRequest"]
        response = await client.get(f"{CMR}/$metadata")
        assert response.status_code == 200
        schema = ET.fromstring(response.content).find(f"{EDMX}DataServices/{EDM}Schema")
        assert schema is not None
        assert schema.get("Namespace") == "API_CREDIT_MEMO_REQUEST_SRV"
        [entity_type] = list(schema.iter(f"{EDM}EntityType"))
        assert entity_type.get("Name") == "A_CreditMemoRequestType"
        assert [r.get("Name") for r in entity_type.iter(f"{EDM}PropertyRef")] == [
            "CreditMemoRequest"
        ]
        props = {p.get("Name"): p for p in entity_type.iter(f"{EDM}Property")}
        assert {
            "CreditMemoRequestType",
            "SalesOrganization",
            "SoldToParty",
            "PurchaseOrderByCustomer",
            "SDDocumentReason",
            "TotalNetAmount",
            "TransactionCurrency",
            "CreditMemoRequestDate",
            "OverallSDProcessStatus",
            "ReferenceSDDocument",
            "LastChangeDateTime",
        } <= set(props)
        assert props["TotalNetAmount"].get("Type") == "Edm.Decimal"
        assert props["CreditMemoRequestDate"].get("Type") == "Edm.DateTime"
        assert props["LastChangeDateTime"].get("Type") == "Edm.DateTimeOffset"
        assert props["OverallSDProcessStatus"].get(f"{SAP}creatable") == "false"
        [entity_set] = list(schema.iter(f"{EDM}EntitySet"))
        assert entity_set.get("Name") == "A_CreditMemoRequest"
        assert entity_set.get(f"{SAP}creatable") == "true"


async def test_create_read_by_key_and_filter(tmp_path):
    async with erp(tmp_path) as client:
        empty = await client.get(f"{CMR}/A_CreditMemoRequest", params={"$inlinecount": "allpages"})
        assert results(empty) == []
        assert empty.json()["d"]["__count"] == "0"
        doc = await _billing_document(client)
        refused = await client.post(f"{CMR}/A_CreditMemoRequest", json=_request(doc))
        assert refused.status_code == 403
        assert refused.headers["x-csrf-token"] == "Required"

        token = await csrf(client)
        created = await client.post(
            f"{CMR}/A_CreditMemoRequest", json=_request(doc), headers={"X-CSRF-Token": token}
        )
        assert created.status_code == 201, created.text
        cmr = created.json()["d"]
        number = cmr["CreditMemoRequest"]
        assert number == "60000001"
        assert cmr["__metadata"]["type"] == "API_CREDIT_MEMO_REQUEST_SRV.A_CreditMemoRequestType"
        assert cmr["__metadata"]["uri"].endswith(f"A_CreditMemoRequest('{number}')")
        assert cmr["TotalNetAmount"] == "125.50"
        assert cmr["CreditMemoRequestType"] == "CR"
        assert cmr["SDDocumentReason"] == "002"
        assert cmr["ReferenceSDDocument"] == doc["BillingDocument"]
        assert cmr["OverallSDProcessStatus"] == "A"
        assert cmr["DistributionChannel"] == "10"
        assert cmr["CreditMemoRequestDate"].startswith("/Date(")
        assert cmr["LastChangeDateTime"].startswith("/Date(")
        assert created.headers["Location"].endswith(f"A_CreditMemoRequest('{number}')")

        single = await client.get(f"{CMR}/A_CreditMemoRequest('{number}')")
        assert single.status_code == 200
        assert single.json()["d"]["PurchaseOrderByCustomer"] == "CW-CREDIT-1"
        assert single.headers["ETag"]
        second = await client.post(
            f"{CMR}/A_CreditMemoRequest",
            json=_request(doc, PurchaseOrderByCustomer="CW-CREDIT-2", ReferenceSDDocument=None),
            headers={"X-CSRF-Token": token},
        )
        assert second.status_code == 201, second.text
        assert second.json()["d"]["ReferenceSDDocument"] is None
        found = await client.get(
            f"{CMR}/A_CreditMemoRequest",
            params={
                "$filter": f"PurchaseOrderByCustomer eq 'CW-CREDIT-1' and "
                f"SoldToParty eq '{doc['SoldToParty']}'"
            },
        )
        assert [r["CreditMemoRequest"] for r in results(found)] == [number]
        both = await client.get(
            f"{CMR}/A_CreditMemoRequest",
            params={
                "$filter": f"SoldToParty eq '{doc['SoldToParty']}'",
                "$orderby": "CreditMemoRequest desc",
            },
        )
        assert [r["PurchaseOrderByCustomer"] for r in results(both)] == [
            "CW-CREDIT-2",
            "CW-CREDIT-1",
        ]
        missing = await client.get(f"{CMR}/A_CreditMemoRequest('69999999')")
        assert missing.status_code == 404


async def test_invalid_requests_are_400_naming_the_property(tmp_path):
    async with erp(tmp_path) as client:
        doc = await _billing_document(client)
        other = results(
            await client.get(
                f"{ROOT}/API_BUSINESS_PARTNER/A_Customer",
                params={"$filter": f"Customer ne '{doc['SoldToParty']}'", "$top": "1"},
            )
        )[0]["Customer"]
        token = await csrf(client)
        cases = [
            (_request(doc, SoldToParty="9999999"), "SoldToParty"),
            (_request(doc, TotalNetAmount=None), "TotalNetAmount"),
            (_request(doc, TotalNetAmount="0"), "TotalNetAmount"),
            (_request(doc, SDDocumentReason=None), "SDDocumentReason"),
            (_request(doc, ReferenceSDDocument="99999999"), "ReferenceSDDocument"),
            (_request(doc, SoldToParty=other), "ReferenceSDDocument"),
            (_request(doc, OverallSDProcessStatus="C"), "OverallSDProcessStatus"),
        ]
        for body, prop in cases:
            refused = await client.post(
                f"{CMR}/A_CreditMemoRequest", json=body, headers={"X-CSRF-Token": token}
            )
            assert refused.status_code == 400, (body, refused.text)
            detail = sap_error(refused)["innererror"]["errordetails"][0]
            assert detail["propertyref"] == prop, (body, detail)
        count = await client.get(f"{CMR}/A_CreditMemoRequest/$count")
        assert count.text == "0"
