"""The ERP sandbox's service documents, $metadata, auth and not-found answers."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.sandbox.erp.helpers import BP, EDM, EDMX, ROOT, SAP, SO, erp, sap_error

pytestmark = pytest.mark.anyio


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
