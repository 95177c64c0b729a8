"""The ERP sandbox's writes: CSRF token and session, ETag rules, bad bodies and reads that follow
every write.
"""

from __future__ import annotations

import orjson
import pytest

from tests.sandbox.erp.helpers import BD, BP, NEW_PARTNER, SO, csrf, erp, results, sap_error

pytestmark = pytest.mark.anyio


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
