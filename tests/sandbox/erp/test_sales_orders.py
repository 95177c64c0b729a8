"""The ERP sandbox's sales orders: deep insert, delete and number ranges."""

from __future__ import annotations

import pytest

from tests.sandbox.erp.helpers import BP, SO, csrf, erp, results, sap_error

pytestmark = pytest.mark.anyio


async def test_sales_order_deep_insert_and_delete(tmp_path):
    async with erp(tmp_path) as client:
        token = await csrf(client)
        headers = {"X-CSRF-Token": token}
        body = {
            "SalesOrderType": "OR",
            "SoldToParty": "1000002",
            "PurchaseOrderByCustomer": "006TEST",
            "to_Item": [
                {"Material": "MAT-1001", "RequestedQuantity": "2"},
                {"Material": "MAT-2001", "RequestedQuantity": "10"},
            ],
        }
        created = await client.post(f"{SO}/A_SalesOrder", json=body, headers=headers)
        assert created.status_code == 201, created.text
        order = created.json()["d"]
        assert order["TotalNetAmount"] == "1250.00"
        assert order["OverallSDProcessStatus"] == "A"
        assert [i["SalesOrderItem"] for i in order["to_Item"]["results"]] == ["10", "20"]
        number = order["SalesOrder"]

        bad_material = await client.post(
            f"{SO}/A_SalesOrder",
            json={**body, "to_Item": [{"Material": "MAT-NOPE", "RequestedQuantity": "1"}]},
            headers=headers,
        )
        assert bad_material.status_code == 400
        assert sap_error(bad_material)["innererror"]["errordetails"][0]["propertyref"] == (
            "Material"
        )
        no_customer = await client.post(
            f"{SO}/A_SalesOrder", json={**body, "SoldToParty": "42"}, headers=headers
        )
        assert no_customer.status_code == 400

        url = f"{SO}/A_SalesOrder('{number}')"
        etag = (await client.get(url)).headers["ETag"]
        gone = await client.delete(url, headers={**headers, "If-Match": etag})
        assert gone.status_code == 204
        assert (await client.get(url)).status_code == 404
        items = await client.get(
            f"{SO}/A_SalesOrderItem", params={"$filter": f"SalesOrder eq '{number}'"}
        )
        assert results(items) == []


async def test_number_ranges_and_deep_insert_consistency(tmp_path):
    async with erp(tmp_path) as client:
        headers = {"X-CSRF-Token": await csrf(client)}
        url = f"{BP}/A_BusinessPartner"
        # a client-chosen number the range would reach next is skipped, not overwritten
        chosen = await client.post(
            url,
            json={"BusinessPartner": "1000020", "OrganizationBPName1": "Chosen"},
            headers=headers,
        )
        assert chosen.status_code == 201
        drawn = await client.post(url, json={"OrganizationBPName1": "Drawn"}, headers=headers)
        assert drawn.json()["d"]["BusinessPartner"] == "1000021"

        mismatch = await client.post(
            url,
            json={
                "OrganizationBPName1": "Mismatch",
                "to_BusinessPartnerTax": [
                    {"BusinessPartner": "1000001", "BPTaxType": "DE0", "BPTaxNumber": "DE1"}
                ],
            },
            headers=headers,
        )
        assert mismatch.status_code == 400
        same_item = await client.post(
            f"{SO}/A_SalesOrder",
            json={
                "SalesOrderType": "OR",
                "SoldToParty": "1000001",
                "to_Item": [
                    {"SalesOrderItem": "10", "Material": "MAT-1001", "RequestedQuantity": "1"},
                    {"SalesOrderItem": "10", "Material": "MAT-1002", "RequestedQuantity": "1"},
                ],
            },
            headers=headers,
        )
        assert same_item.status_code == 409
        # refused creates drew no numbers: the next order gets the next number in the range
        first = await client.post(
            f"{SO}/A_SalesOrder",
            json={
                "SalesOrderType": "OR",
                "SoldToParty": "1000001",
                "to_Item": [{"Material": "MAT-1001", "RequestedQuantity": "1"}],
            },
            headers=headers,
        )
        last_seeded = results(
            await client.get(
                f"{SO}/A_SalesOrder", params={"$orderby": "SalesOrder desc", "$top": "2"}
            )
        )[1]["SalesOrder"]
        assert int(first.json()["d"]["SalesOrder"]) == int(last_seeded) + 1
        assert (await client.get(f"{BP}/A_BusinessPartner/$count")).text == "22"
