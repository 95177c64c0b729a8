"""The ERP sandbox's query options: $filter, $select, $orderby, $top, $skip, $inlinecount and their
errors.
"""

from __future__ import annotations

import time

import pytest

from tests.sandbox.erp.helpers import BD, BP, SO, csrf, erp, results, sap_error

pytestmark = pytest.mark.anyio


async def test_filter_select_orderby_top_skip_inlinecount(tmp_path):
    async with erp(tmp_path) as client:
        everyone = results(await client.get(f"{BP}/A_BusinessPartner"))
        name = everyone[4]["BusinessPartnerFullName"]
        word = name.split()[0][2:6].lower()

        found = results(
            await client.get(
                f"{BP}/A_BusinessPartner",
                params={"$filter": f"substringof('{word}', tolower(BusinessPartnerFullName))"},
            )
        )
        assert name in {f["BusinessPartnerFullName"] for f in found}
        assert all(word in f["BusinessPartnerFullName"].lower() for f in found)

        chain = " or ".join(f"BusinessPartner eq '{n}'" for n in ("1000001", "1000007", "x"))
        rows = results(await client.get(f"{BP}/A_BusinessPartner", params={"$filter": chain}))
        assert [r["BusinessPartner"] for r in rows] == ["1000001", "1000007"]

        tricky = (
            "(startswith(BusinessPartner,'100000') and not (BusinessPartner le '1000004'))"
            " and endswith(BusinessPartner,'7') and BusinessPartnerCategory ne '1'"
        )
        rows = results(await client.get(f"{BP}/A_BusinessPartner", params={"$filter": tricky}))
        assert [r["BusinessPartner"] for r in rows] == ["1000007"]

        big = results(
            await client.get(
                f"{SO}/A_SalesOrder",
                params={
                    "$filter": "TotalNetAmount gt 10000 and "
                    "CreationDate ge datetime'2020-01-01T00:00:00'",
                    "$orderby": "TotalNetAmount desc",
                    "$select": "SalesOrder,TotalNetAmount",
                },
            )
        )
        amounts = [float(r["TotalNetAmount"]) for r in big]
        assert amounts
        assert all(a > 10000 for a in amounts)
        assert amounts == sorted(amounts)[::-1]
        assert set(big[0]) == {"__metadata", "SalesOrder", "TotalNetAmount"}

        window = await client.get(
            f"{BP}/A_BusinessPartner",
            params={"$skip": "3", "$top": "4", "$inlinecount": "allpages", "$format": "json"},
        )
        body = window.json()["d"]
        assert body["__count"] == "20"
        assert [r["BusinessPartner"] for r in body["results"]] == [
            "1000003",
            "1000004",
            "1000005",
            "1000006",
        ]
        assert "__next" not in body

        quoted = await client.get(
            f"{BP}/A_BusinessPartner",
            params={
                "$filter": "BusinessPartnerFullName eq 'O''Brien' or BusinessPartner eq '1000002'"
            },
        )
        assert [r["BusinessPartner"] for r in results(quoted)] == ["1000002"]


BAD_QUERIES = [
    ({"$filter": "Nope eq '1'"}, "Nope"),
    ({"$filter": "BusinessPartner eq 1"}, ""),
    ({"$filter": "BusinessPartner eq '1"}, ""),
    ({"$filter": "BusinessPartner eq '1' or"}, ""),
    ({"$filter": "BusinessPartner add 1 eq 2"}, ""),
    ({"$filter": "(" * 200 + "BusinessPartner eq '1'" + ")" * 200}, ""),
    ({"$filter": "BusinessPartner eq '1'; DROP TABLE docs"}, ""),
    ({"$filter": "substringof(BusinessPartner)"}, ""),
    ({"$filter": "evil(BusinessPartner)"}, ""),
    ({"$filter": "BusinessPartner"}, ""),
    ({"$filter": "CreationDate gt datetime'yesterday'"}, ""),
    ({"$filter": "to_Customer/Customer eq '1'"}, "to_Customer/Customer"),
    ({"$select": "Nope"}, "Nope"),
    ({"$expand": "to_Nowhere"}, "to_Nowhere"),
    ({"$orderby": "Nope desc"}, "Nope"),
    ({"$orderby": "BusinessPartner sideways"}, ""),
    ({"$top": "-1"}, ""),
    ({"$skip": "ten"}, ""),
    ({"$inlinecount": "some"}, ""),
    ({"$format": "xml"}, ""),
    ({"$search": "x"}, ""),
]


async def test_bad_query_options_are_400_with_sap_body(tmp_path):
    async with erp(tmp_path) as client:
        for params, propertyref in BAD_QUERIES:
            response = await client.get(f"{BP}/A_BusinessPartner", params=params)
            assert response.status_code == 400, (params, response.text)
            error = sap_error(response)
            assert error["innererror"]["errordetails"][0]["propertyref"] == propertyref


async def test_filter_injection_stays_inside_the_literal(tmp_path):
    async with erp(tmp_path) as client:
        sneaky = "BusinessPartner eq '1000001'' or ''1'' eq ''1'"
        rows = results(await client.get(f"{BP}/A_BusinessPartner", params={"$filter": sneaky}))
        assert rows == []


async def test_last_change_filters_follow_writes(tmp_path):
    async with erp(tmp_path) as client:
        headers = {"X-CSRF-Token": await csrf(client)}
        began = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1))
        created = await client.post(
            f"{SO}/A_SalesOrder",
            json={
                "SalesOrderType": "OR",
                "SoldToParty": "1000002",
                "PurchaseOrderByCustomer": "006FEED",
                "to_Item": [{"Material": "MAT-1001", "RequestedQuantity": "1"}],
            },
            headers=headers,
        )
        assert created.status_code == 201, created.text
        number = created.json()["d"]["SalesOrder"]

        async def numbers(service: str, entity: str, key: str, filter_: str) -> set[str]:
            answer = await client.get(
                f"{service}/{entity}", params={"$filter": filter_, "$top": "5000"}
            )
            return {row[key] for row in results(answer)}

        for literal in (f"datetimeoffset'{began}Z'", f"datetime'{began}'"):
            assert await numbers(
                SO, "A_SalesOrder", "SalesOrder", f"LastChangeDateTime gt {literal}"
            ) == {number}
            assert number in await numbers(
                SO, "A_SalesOrder", "SalesOrder", f"LastChangeDateTime ge {literal}"
            )
            assert number not in await numbers(
                SO, "A_SalesOrder", "SalesOrder", f"LastChangeDateTime lt {literal}"
            )
        old = await numbers(
            BD,
            "A_BillingDocument",
            "BillingDocument",
            "LastChangeDateTime lt datetimeoffset'2100-01-01T00:00:00Z'",
        )
        assert old
        assert not await numbers(
            BD,
            "A_BillingDocument",
            "BillingDocument",
            f"LastChangeDateTime gt datetimeoffset'{began}Z'",
        )
        today = time.strftime("%Y-%m-%dT00:00:00", time.gmtime())
        partners = await numbers(
            BP, "A_BusinessPartner", "BusinessPartner", f"LastChangeDate ge datetime'{today}'"
        )
        assert partners == set()
