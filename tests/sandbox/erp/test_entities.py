"""The ERP sandbox's entity reads: keys, navigation, payload shapes and server paging."""

from __future__ import annotations

import pytest

from tests.sandbox.erp.helpers import BD, BP, SO, erp, results

pytestmark = pytest.mark.anyio


async def test_entities_keys_navigation_and_payload_shapes(tmp_path):
    async with erp(tmp_path) as client:
        single = await client.get(f"{BP}/A_BusinessPartner('1000003')")
        assert single.status_code == 200
        bp = single.json()["d"]
        meta = bp["__metadata"]
        assert meta["type"] == "API_BUSINESS_PARTNER.A_BusinessPartnerType"
        assert meta["uri"].endswith("/A_BusinessPartner('1000003')")
        assert meta["etag"].startswith("W/\"datetime'")
        assert single.headers["ETag"] == meta["etag"]
        assert bp["BusinessPartnerCategory"] == "2"
        assert bp["Customer"] == "1000003"
        assert bp["SearchTerm1"] == bp["BusinessPartnerFullName"].split()[0].upper()
        assert bp["BusinessPartnerIDByExtSystem"].startswith("001")
        assert bp["CreationDate"].startswith("/Date(")
        assert bp["CreationDate"].endswith(")/")
        deferred = bp["to_BusinessPartnerAddress"]["__deferred"]["uri"]
        assert deferred.endswith("A_BusinessPartner('1000003')/to_BusinessPartnerAddress")

        addresses = results(await client.get(deferred))
        assert addresses[0]["Country"]
        assert addresses[0]["CityName"]
        tax = results(await client.get(f"{BP}/A_BusinessPartner('1000003')/to_BusinessPartnerTax"))
        assert tax[0]["BPTaxType"] == addresses[0]["Country"] + "0"
        customer = await client.get(f"{BP}/A_BusinessPartner('1000003')/to_Customer")
        assert customer.json()["d"]["Customer"] == "1000003"
        area_uri = (
            f"{BP}/A_CustomerSalesArea(Customer='1000003',SalesOrganization='1010',"
            "DistributionChannel='10',Division='00')"
        )
        area = (await client.get(area_uri)).json()["d"]
        assert area["CustomerPaymentTerms"].startswith("NT")

        expanded = await client.get(
            f"{BP}/A_BusinessPartner('1000003')",
            params={
                "$expand": "to_BusinessPartnerAddress,to_Customer/to_CustomerSalesArea",
                "$select": "BusinessPartner,to_BusinessPartnerAddress",
            },
        )
        body = expanded.json()["d"]
        assert "BusinessPartnerFullName" not in body
        assert body["to_BusinessPartnerAddress"]["results"][0]["Country"]
        sales_area = body["to_Customer"]["to_CustomerSalesArea"]["results"][0]
        assert sales_area["CustomerPaymentTerms"] == area["CustomerPaymentTerms"]

        order = await client.get(f"{SO}/A_SalesOrder('5000001')", params={"$expand": "to_Item"})
        o = order.json()["d"]
        assert o["SalesOrderType"] == "OR"
        assert o["SalesOrganization"] == "1010"
        assert o["TransactionCurrency"] == "EUR"
        assert isinstance(o["TotalNetAmount"], str)
        assert o["to_Item"]["results"][0]["Material"].startswith("MAT-")
        assert o["PurchaseOrderByCustomer"].startswith("006")

        docs = results(await client.get(f"{BD}/A_BillingDocument", params={"$top": "5"}))
        assert {d["AccountingPostingStatus"] for d in docs} <= {"A", "C"}
        assert all(d["PurchaseOrderByCustomer"].startswith("in_") for d in docs)

        count = await client.get(f"{BP}/A_BusinessPartner/$count")
        assert count.text == "20"


async def test_server_paging_walk_with_skiptoken(tmp_path):
    async with erp(tmp_path, page_size=6) as client:
        seen: list[str] = []
        url: str | None = f"{BP}/A_BusinessPartner"
        params: dict[str, str] | None = {"$inlinecount": "allpages", "$top": "15"}
        pages = 0
        while url:
            response = await client.get(url, params=params)
            body = response.json()["d"]
            assert body["__count"] == "20"
            seen += [r["BusinessPartner"] for r in body["results"]]
            url, params = body.get("__next"), None
            if url:
                assert "$skiptoken=" in url
                assert "$top=15" in url
            pages += 1
        assert pages == 3
        assert seen == [str(1000000 + n) for n in range(15)]

        # no $top: the whole set, still in pages of six
        first = (await client.get(f"{BP}/A_BusinessPartner")).json()["d"]
        assert len(first["results"]) == 6
        assert "__next" in first
