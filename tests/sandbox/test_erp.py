"""The ERP sandbox (SAP S/4HANA OData V2) against a real loopback server."""

from __future__ import annotations

import hmac
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.app import SandboxConfig
from sandbox.erp import create_app
from tests.servers import serve

pytestmark = pytest.mark.anyio

ROOT = "/sap/opu/odata/sap"
BP = f"{ROOT}/API_BUSINESS_PARTNER"
SO = f"{ROOT}/API_SALES_ORDER_SRV"
BD = f"{ROOT}/API_BILLING_DOCUMENT_SRV"
AUTH = ("sandbox", "sandbox")
EDMX = "{http://schemas.microsoft.com/ado/2007/06/edmx}"
EDM = "{http://schemas.microsoft.com/ado/2008/09/edm}"
SAP = "{http://www.sap.com/Protocols/SAPData}"


@asynccontextmanager
async def erp(
    tmp_path: Any, *, webhook_url: str | None = None, secret: str = "", **kwargs: Any
) -> AsyncIterator[httpx.AsyncClient]:
    config = SandboxConfig.for_system(
        "erp", data_dir=tmp_path, gateway_url=None, customers=20, fresh=True
    )
    if webhook_url:
        config = SandboxConfig(
            system="erp",
            port=config.port,
            data_dir=tmp_path,
            customers=20,
            fresh=True,
            webhook_url=webhook_url,
            webhook_secret=secret,
        )
    async with (
        serve(create_app(config, **kwargs)) as url,
        httpx.AsyncClient(base_url=url, auth=AUTH, timeout=10) as client,
    ):
        yield client


def sap_error(response: httpx.Response) -> dict[str, Any]:
    """The SAP OData V2 error body, checked for the documented shape."""
    error = response.json()["error"]
    assert set(error) == {"code", "message", "innererror"}
    assert error["message"]["lang"] == "en"
    assert isinstance(error["message"]["value"], str)
    detail = error["innererror"]["errordetails"][0]
    assert set(detail) == {"code", "message", "propertyref", "severity"}
    return dict(error)


async def csrf(client: httpx.AsyncClient) -> str:
    response = await client.get(f"{BP}/", headers={"X-CSRF-Token": "Fetch"})
    assert response.status_code == 200
    assert response.cookies.get("SAP_SESSIONID_S4H_100")
    token = response.headers["x-csrf-token"]
    assert token
    assert token != "Required"
    return token


def results(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["d"]["results"]
    return rows


# ------------------------------------------------------------------------ service documents


async def test_service_documents_and_metadata(tmp_path):
    async with erp(tmp_path) as client:
        doc = await client.get(f"{BP}/", params={"$format": "json"})
        assert doc.json()["d"]["EntitySets"][0] == "A_BusinessPartner"
        xml_doc = await client.get(f"{SO}/")
        assert xml_doc.headers["content-type"].startswith("application/xml")
        assert b'href="A_SalesOrder"' in xml_doc.content

        for service, entity_type, key in (
            ("API_BUSINESS_PARTNER", "A_BusinessPartnerType", ["BusinessPartner"]),
            ("API_SALES_ORDER_SRV", "A_SalesOrderItemType", ["SalesOrder", "SalesOrderItem"]),
            ("API_BILLING_DOCUMENT_SRV", "A_BillingDocumentType", ["BillingDocument"]),
        ):
            response = await client.get(f"{ROOT}/{service}/$metadata")
            assert response.status_code == 200
            root = ET.fromstring(response.content)
            assert root.tag == f"{EDMX}Edmx"
            schema = root.find(f"{EDMX}DataServices/{EDM}Schema")
            assert schema is not None
            assert schema.get("Namespace") == service
            types = {t.get("Name"): t for t in schema.iter(f"{EDM}EntityType")}
            refs = [r.get("Name") for r in types[entity_type].iter(f"{EDM}PropertyRef")]
            assert refs == key
            sets = [s.get("Name") for s in schema.iter(f"{EDM}EntitySet")]
            assert entity_type.removesuffix("Type") in sets

        meta = ET.fromstring((await client.get(f"{BP}/$metadata")).content)
        bp_type = next(
            t for t in meta.iter(f"{EDM}EntityType") if t.get("Name") == "A_BusinessPartnerType"
        )
        navs = {n.get("Name") for n in bp_type.iter(f"{EDM}NavigationProperty")}
        assert navs == {"to_BusinessPartnerAddress", "to_BusinessPartnerTax", "to_Customer"}
        labels = [p.get(f"{SAP}label") for p in bp_type.iter(f"{EDM}Property")]
        assert all(labels)
        assert len(list(meta.iter(f"{EDM}Association"))) >= 4


# ------------------------------------------------------------------------ reads


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


# ------------------------------------------------------------------------ errors and auth


async def test_auth_errors_and_not_found(tmp_path):
    async with erp(tmp_path) as client:
        anonymous = await client.get(f"{BP}/A_BusinessPartner", auth=None)
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
        sap_error(anonymous)
        wrong = await client.get(f"{BP}/A_BusinessPartner", auth=("sandbox", "nope"))
        assert wrong.status_code == 401

        missing = await client.get(f"{BP}/A_BusinessPartner('0000000')")
        assert missing.status_code == 404
        sap_error(missing)
        unknown_set = await client.get(f"{BP}/A_Nothing")
        assert unknown_set.status_code == 404
        sap_error(unknown_set)
        unknown_service = await client.get(f"{ROOT}/API_NOPE/A_BusinessPartner")
        assert unknown_service.status_code == 404


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


# ------------------------------------------------------------------------ CSRF, ETag, writes


NEW_PARTNER = {
    "BusinessPartnerCategory": "2",
    "OrganizationBPName1": "Acme Test GmbH",
    "BusinessPartnerIDByExtSystem": "EXT-42",
    "to_BusinessPartnerAddress": {"results": [{"Country": "DE", "CityName": "Bonn"}]},
    "to_BusinessPartnerTax": [{"BPTaxType": "DE0", "BPTaxNumber": "DE123456789"}],
    "to_Customer": {
        "to_CustomerSalesArea": {
            "results": [
                {
                    "SalesOrganization": "1010",
                    "DistributionChannel": "10",
                    "Division": "00",
                    "CustomerPaymentTerms": "NT30",
                    "Currency": "EUR",
                }
            ]
        }
    },
}


async def test_csrf_token_and_session_cookie_are_required_for_writes(tmp_path):
    async with erp(tmp_path) as client:
        no_token = await client.post(f"{BP}/A_BusinessPartner", json=NEW_PARTNER)
        assert no_token.status_code == 403
        assert no_token.headers["x-csrf-token"] == "Required"

        token = await csrf(client)
        cookie = client.cookies.get("SAP_SESSIONID_S4H_100")
        client.cookies.clear()
        no_cookie = await client.post(
            f"{BP}/A_BusinessPartner", json=NEW_PARTNER, headers={"X-CSRF-Token": token}
        )
        assert no_cookie.status_code == 403
        client.cookies.set("SAP_SESSIONID_S4H_100", cookie or "")
        wrong = await client.post(
            f"{BP}/A_BusinessPartner", json=NEW_PARTNER, headers={"X-CSRF-Token": "forged"}
        )
        assert wrong.status_code == 403

        again = await client.get(f"{BP}/$metadata", headers={"X-CSRF-Token": "Fetch"})
        assert again.headers["x-csrf-token"] == token  # one token per session
        created = await client.post(
            f"{BP}/A_BusinessPartner", json=NEW_PARTNER, headers={"X-CSRF-Token": token}
        )
        assert created.status_code == 201, created.text
        bp = created.json()["d"]
        assert bp["BusinessPartner"] == "1000020"
        assert bp["Customer"] == "1000020"
        assert bp["SearchTerm1"] == "ACME"
        assert bp["to_BusinessPartnerTax"]["results"][0]["BPTaxNumber"] == "DE123456789"
        area = bp["to_Customer"]["to_CustomerSalesArea"]["results"][0]
        assert area["Customer"] == "1000020"
        assert area["CustomerPaymentTerms"] == "NT30"
        assert created.headers["Location"].endswith("A_BusinessPartner('1000020')")
        read = await client.get(
            f"{BP}/A_BusinessPartner",
            params={"$filter": "BusinessPartnerIDByExtSystem eq 'EXT-42'"},
        )
        assert [r["BusinessPartner"] for r in results(read)] == ["1000020"]


async def test_etag_if_match_rules(tmp_path):
    async with erp(tmp_path) as client:
        token = await csrf(client)
        url = f"{BP}/A_BusinessPartner('1000005')"
        etag = (await client.get(url)).headers["ETag"]
        headers = {"X-CSRF-Token": token}
        change = {"BusinessPartnerFullName": "Renamed Ltd"}

        missing = await client.patch(url, json=change, headers=headers)
        assert missing.status_code == 428
        sap_error(missing)

        ok = await client.post(
            url, json=change, headers={**headers, "X-HTTP-Method": "MERGE", "If-Match": etag}
        )
        assert ok.status_code == 204, ok.text
        new_etag = ok.headers["ETag"]
        assert new_etag != etag

        stale = await client.request(
            "MERGE", url, json={"SearchTerm2": "X"}, headers={**headers, "If-Match": etag}
        )
        assert stale.status_code == 412
        sap_error(stale)

        read = await client.get(url)
        assert read.json()["d"]["BusinessPartnerFullName"] == "Renamed Ltd"
        assert read.headers["ETag"] == new_etag

        area = (
            f"{BP}/A_CustomerSalesArea(Customer='1000005',SalesOrganization='1010',"
            "DistributionChannel='10',Division='00')"
        )
        area_etag = (await client.get(area)).headers["ETag"]
        put = await client.put(
            area,
            json={"CustomerPaymentTerms": "NT60", "Currency": "EUR"},
            headers={**headers, "If-Match": area_etag},
        )
        assert put.status_code == 204
        after = (await client.get(area)).json()["d"]
        assert after["CustomerPaymentTerms"] == "NT60"
        assert after["SalesDistrict"] is None

        readonly = await client.patch(
            url, json={"CreationDate": "/Date(0)/"}, headers={**headers, "If-Match": "*"}
        )
        assert readonly.status_code == 400
        assert sap_error(readonly)["innererror"]["errordetails"][0]["propertyref"] == (
            "CreationDate"
        )
        not_deletable = await client.delete(url, headers={**headers, "If-Match": "*"})
        assert not_deletable.status_code == 405


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


async def test_equality_filters_and_navigation_follow_every_write(tmp_path):
    """Equality filters and $expand are served from indexes that writes keep current:
    answers equal a full scan's, before and after creates, updates and deletes."""
    async with erp(tmp_path) as client:
        headers = {"X-CSRF-Token": await csrf(client)}

        async def orders(filter_: str) -> list[str]:
            answer = await client.get(
                f"{SO}/A_SalesOrder", params={"$filter": filter_, "$expand": "to_Item"}
            )
            assert answer.status_code == 200, answer.text
            return [f"{o['SalesOrder']}:{len(o['to_Item']['results'])}" for o in results(answer)]

        everything = results(await client.get(f"{SO}/A_SalesOrder", params={"$top": "1000"}))
        party = everything[0]["SoldToParty"]
        scanned = sorted(o["SalesOrder"] for o in everything if o["SoldToParty"] == party)
        by_party = await orders(f"SoldToParty eq '{party}'")
        assert sorted(o.split(":")[0] for o in by_party) == scanned
        # or of equalities, and a further condition: the same as the scan says
        assert await orders(f"SoldToParty eq '{party}' or SoldToParty eq 'NOBODY'") == by_party
        assert await orders(f"(SoldToParty eq '{party}') and SalesOrderType eq 'NOPE'") == []
        assert await orders(f"not (SoldToParty ne '{party}')") == by_party

        created = []
        for po in ("006IDX1", "006IDX2"):
            answer = await client.post(
                f"{SO}/A_SalesOrder",
                json={
                    "SalesOrderType": "OR",
                    "SoldToParty": party,
                    "PurchaseOrderByCustomer": po,
                    "to_Item": [{"Material": "MAT-1001", "RequestedQuantity": "1"}],
                },
                headers=headers,
            )
            assert answer.status_code == 201, answer.text
            created.append(answer.json()["d"]["SalesOrder"])
        assert await orders("PurchaseOrderByCustomer eq '006IDX1'") == [f"{created[0]}:1"]
        assert await orders(f"SoldToParty eq '{party}'") == sorted(
            [*by_party, *(f"{n}:1" for n in created)]
        )

        url = f"{SO}/A_SalesOrder('{created[0]}')"
        etag = (await client.get(url)).headers["ETag"]
        changed = await client.patch(
            url,
            json={"PurchaseOrderByCustomer": "006IDX9"},
            headers={**headers, "If-Match": etag},
        )
        assert changed.status_code == 204, changed.text
        assert await orders("PurchaseOrderByCustomer eq '006IDX1'") == []
        assert await orders("PurchaseOrderByCustomer eq '006IDX9'") == [f"{created[0]}:1"]

        etag = (await client.get(url)).headers["ETag"]
        gone = await client.delete(url, headers={**headers, "If-Match": etag})
        assert gone.status_code == 204
        assert await orders("PurchaseOrderByCustomer eq '006IDX9'") == []
        items = await client.get(
            f"{SO}/A_SalesOrderItem", params={"$filter": f"SalesOrder eq '{created[0]}'"}
        )
        assert results(items) == []
        nav = await client.get(f"{SO}/A_SalesOrder('{created[1]}')/to_Item")
        assert [i["SalesOrderItem"] for i in results(nav)] == ["10"]


async def test_bad_bodies_are_4xx_and_leave_the_store_alone(tmp_path):
    async with erp(tmp_path) as client:
        token = await csrf(client)
        headers = {"X-CSRF-Token": token, "Content-Type": "application/json"}
        url = f"{BP}/A_BusinessPartner"
        cases: list[tuple[bytes | str, dict[str, str], int]] = [
            (b"{not json", headers, 400),
            (b"[1, 2]", headers, 400),
            (b"", headers, 400),
            (b"null", headers, 400),
            (b"\xff\xfe", headers, 400),
            (b"[" * 5000 + b"]" * 5000, headers, 400),
            (
                b"OrganizationBPName1=x",
                {**headers, "Content-Type": "application/x-www-form-urlencoded"},
                415,
            ),
            (orjson.dumps({"OrganizationBPName1": "x", "Hacker": 1}), headers, 400),
            (orjson.dumps({"OrganizationBPName1": 5}), headers, 400),
            (orjson.dumps({"OrganizationBPName1": "x" * 41}), headers, 400),
            (
                orjson.dumps({"BusinessPartnerCategory": "9", "OrganizationBPName1": "x"}),
                headers,
                400,
            ),
            (orjson.dumps({"BusinessPartnerCategory": "2"}), headers, 400),
            (orjson.dumps({"OrganizationBPName1": "   "}), headers, 400),
            (orjson.dumps({"OrganizationBPName1": "x", "to_Customer": [1]}), headers, 400),
            (
                orjson.dumps({"OrganizationBPName1": "x", "BusinessPartnerIsBlocked": "no"}),
                headers,
                400,
            ),
            (
                orjson.dumps(
                    {"OrganizationBPName1": "x", "BusinessPartnerIDByExtSystem": "y" * 21}
                ),
                headers,
                400,
            ),
            (
                orjson.dumps({"OrganizationBPName1": "x", "BusinessPartner": "1000001"}),
                headers,
                409,
            ),
            (b"{}" + b" " * (1 << 21), headers, 413),
        ]
        for body, hdrs, status in cases:
            response = await client.post(url, content=body, headers=hdrs)
            assert response.status_code == status, (body[:40], response.text)
            sap_error(response)
        docs = {
            "TotalNetAmount": "1e40",
            "SoldToParty": "1000001",
        }
        response = await client.post(f"{BD}/A_BillingDocument", json=docs, headers=headers)
        assert response.status_code == 400
        count = await client.get(f"{BP}/A_BusinessPartner/$count")
        assert count.text == "20"
        # odd paths and methods: vendor-style 4xx, never a 500
        for method, path in (
            ("GET", f"{BP}/A_BusinessPartner('1000001'"),
            ("GET", f"{BP}/A_BusinessPartner(1000001)"),
            ("GET", f"{BP}/A_BusinessPartnerAddress('1')"),
            ("GET", f"{BP}/A_BusinessPartner/to_Customer"),
            ("GET", f"{BP}/A_BusinessPartner('1000001')/to_Nowhere"),
            ("GET", f"{BP}/A_BusinessPartner('1000001')/to_Customer/x/y"),
            ("DELETE", f"{BP}/A_BusinessPartner"),
            ("POST", f"{BP}/A_BusinessPartner/$count"),
            ("POST", f"{BP}/A_Customer"),
            ("POST", f"{BP}/$metadata"),
            ("OPTIONS", f"{BP}/A_BusinessPartner"),
            ("PUT", f"{BP}/"),
        ):
            response = await client.request(method, path, headers=headers, content=b"{}")
            assert 400 <= response.status_code < 500, (method, path, response.text)
            sap_error(response)


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


# ------------------------------------------------------------------------ throttling, chaos


async def test_built_in_rate_limit_answers_503_with_retry_after(tmp_path):
    async with erp(tmp_path, rate=0.01, burst=3, retry_after=7) as client:
        statuses = [
            (await client.get(f"{BP}/A_BusinessPartner/$count")).status_code for _ in range(4)
        ]
        assert statuses[:3] == [200, 200, 200]
        limited = await client.get(f"{BP}/A_BusinessPartner/$count")
        assert limited.status_code == 503
        assert limited.headers["Retry-After"] == "7"
        sap_error(limited)


async def test_chaos_modes(tmp_path):
    async with erp(tmp_path) as client:
        url = f"{BP}/A_BusinessPartner('1000001')"

        await client.put("/_sandbox/chaos", json={"outage": True})
        down = await client.get(url)
        assert down.status_code == 503
        assert down.headers["connection"] == "close"

        await client.put("/_sandbox/chaos", json={"outage": False, "latency_ms": [150, 160]})
        started = time.monotonic()
        assert (await client.get(url)).status_code == 200
        assert time.monotonic() - started >= 0.15

        await client.put("/_sandbox/chaos", json={"latency_ms": [0, 0], "error_rate": 1.0})
        failed = await client.get(url)
        assert failed.status_code == 500
        sap_error(failed)

        await client.put("/_sandbox/chaos", json={"error_rate": 0.0, "throttle": True})
        throttled = await client.get(url)
        assert throttled.status_code == 503
        assert "Retry-After" in throttled.headers
        sap_error(throttled)

        await client.put("/_sandbox/chaos", json={"throttle": False, "malformed_rate": 1.0})
        broken = await client.get(url)
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(broken.content)

        await client.post("/_sandbox/reset")
        assert (await client.get(url)).status_code == 200


async def test_reset_restores_the_seeded_data(tmp_path):
    async with erp(tmp_path) as client:
        token = await csrf(client)
        created = await client.post(
            f"{BP}/A_BusinessPartner", json=NEW_PARTNER, headers={"X-CSRF-Token": token}
        )
        assert created.status_code == 201
        url = f"{BP}/A_BusinessPartner('1000002')"
        etag = (await client.get(url)).headers["ETag"]
        changed = await client.patch(
            url,
            json={"BusinessPartnerFullName": "Changed"},
            headers={"X-CSRF-Token": token, "If-Match": etag},
        )
        assert changed.status_code == 204
        assert (await client.get(f"{BP}/A_BusinessPartner/$count")).text == "21"

        assert (await client.post("/_sandbox/reset")).status_code == 200
        assert (await client.get(f"{BP}/A_BusinessPartner/$count")).text == "20"
        assert (await client.get(url)).headers["ETag"] == etag
        assert (await client.get(url)).json()["d"]["BusinessPartnerFullName"] != "Changed"
        # sessions are gone with the reset: the old token no longer works
        stale = await client.post(
            f"{BP}/A_BusinessPartner", json=NEW_PARTNER, headers={"X-CSRF-Token": token}
        )
        assert stale.status_code == 403
        again = await client.post(
            f"{BP}/A_BusinessPartner",
            json=NEW_PARTNER,
            headers={"X-CSRF-Token": await csrf(client)},
        )
        assert again.json()["d"]["BusinessPartner"] == "1000020"


# ------------------------------------------------------------------------ events


async def test_cloudevents_are_pushed_with_the_shared_secret_bearer(tmp_path):
    secret = "erp-test-secret"
    received: list[dict[str, Any]] = []
    rejected: list[str] = []
    got_both = anyio.Event()

    async def hook(request: Request) -> Response:
        # independent verifier: SAP event delivery authenticates with a bearer token
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not hmac.compare_digest(token.encode(), secret.encode()):
            rejected.append(header)
            return Response(status_code=401)
        received.append(orjson.loads(await request.body()))
        if len(received) >= 2:
            got_both.set()
        return Response(status_code=204)

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with (
        serve(receiver) as hook_url,
        erp(tmp_path, webhook_url=f"{hook_url}/hook", secret=secret) as client,
    ):
        token = await csrf(client)
        headers = {"X-CSRF-Token": token}
        partner = await client.post(f"{BP}/A_BusinessPartner", json=NEW_PARTNER, headers=headers)
        assert partner.status_code == 201
        document = await client.post(
            f"{BD}/A_BillingDocument",
            json={
                "SoldToParty": "1000001",
                "PurchaseOrderByCustomer": "in_test",
                "TotalNetAmount": "100.00",
                "TaxAmount": "19.00",
            },
            headers=headers,
        )
        assert document.status_code == 201, document.text
        doc = document.json()["d"]
        assert doc["TotalGrossAmount"] == "119.00"
        assert doc["AccountingPostingStatus"] == "C"
        with anyio.fail_after(10):
            await got_both.wait()
    assert rejected == []
    assert len(received) == 2  # nothing from seeding, one event per API change
    by_type = {event["type"]: event for event in received}
    changed = by_type["sap.s4.beh.businesspartner.v1.BusinessPartner.Changed.v1"]
    assert changed["data"] == {"BusinessPartner": "1000020"}
    created = by_type["sap.s4.beh.billingdocument.v1.BillingDocument.Created.v1"]
    assert created["data"] == {"BillingDocument": doc["BillingDocument"]}
    for event in received:
        assert event["specversion"] == "1.0"
        assert event["datacontenttype"] == "application/json"
        assert event["source"]
        assert event["id"]
        assert event["time"].endswith("Z")


# ------------------------------------------------------------------------ a real OData client


def _pyodata_session(url: str) -> dict[str, Any]:
    """pyodata (SAP's own Python OData V2 client) reads $metadata, queries, creates, updates."""
    import pyodata  # type: ignore[import-untyped]
    import requests  # type: ignore[import-untyped]

    out: dict[str, Any] = {}
    with requests.Session() as session:
        session.auth = AUTH
        partners = pyodata.Client(f"{url}{BP}", session)
        entity_set = partners.entity_sets.A_BusinessPartner
        rows = entity_set.get_entities().filter("startswith(BusinessPartner,'100000')").top(3)
        out["first"] = [r.BusinessPartner for r in rows.execute()]
        one = entity_set.get_entity("1000003").expand("to_BusinessPartnerAddress").execute()
        out["country"] = [a.Country for a in one.to_BusinessPartnerAddress]
        out["count"] = entity_set.get_entities().count().execute()

        orders = pyodata.Client(f"{url}{SO}", session)
        fetched = session.get(f"{url}{SO}/", headers={"X-CSRF-Token": "Fetch"})
        session.headers["X-CSRF-Token"] = fetched.headers["x-csrf-token"]
        created = (
            orders.entity_sets.A_SalesOrder.create_entity()
            .set(
                SalesOrderType="OR",
                SoldToParty="1000001",
                PurchaseOrderByCustomer="006PYODATA",
                to_Item=[{"Material": "MAT-1001", "RequestedQuantity": "2"}],
            )
            .execute()
        )
        out["created"] = (created.SalesOrder, created.TotalNetAmount)
        try:
            orders.entity_sets.A_SalesOrder.update_entity(SalesOrder=created.SalesOrder).set(
                PurchaseOrderByCustomer="006CHANGED"
            ).execute()
        except pyodata.exceptions.HttpError as exc:
            out["without_if_match"] = exc.response.status_code
        etag = session.get(f"{url}{SO}/A_SalesOrder('{created.SalesOrder}')").headers["ETag"]
        session.headers["If-Match"] = etag
        orders.entity_sets.A_SalesOrder.update_entity(SalesOrder=created.SalesOrder).set(
            PurchaseOrderByCustomer="006CHANGED"
        ).execute()
        out["changed"] = (
            orders.entity_sets.A_SalesOrder.get_entity(created.SalesOrder)
            .execute()
            .PurchaseOrderByCustomer
        )
    return out


async def test_pyodata_client_works_against_the_sandbox(tmp_path):
    pytest.importorskip("pyodata")
    async with erp(tmp_path) as client:
        result = await anyio.to_thread.run_sync(_pyodata_session, str(client.base_url).rstrip("/"))
    assert result["first"] == ["1000000", "1000001", "1000002"]
    assert len(result["country"]) == 1
    assert result["count"] == 20
    assert result["created"][1] == "1000.00"
    assert result["without_if_match"] == 428
    assert result["changed"] == "006CHANGED"


# ------------------------------------------------------------------------ change filters


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
