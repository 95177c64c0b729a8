"""The pyodata client against the ERP sandbox."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from tests.sandbox.erp.helpers import AUTH, BP, SO, erp

pytestmark = pytest.mark.anyio


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
