"""Shared by the ERP sandbox tests: the running sandbox, the service roots and the OData wire
helpers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from sandbox.app import SandboxConfig
from sandbox.erp import create_app
from tests.servers import serve

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
