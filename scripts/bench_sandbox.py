"""CPU per call of one sandbox system, route by route.

    .venv/bin/python scripts/bench_sandbox.py [--system erp,billing,crm,support] [-n 500]

Each system runs alone in a child process (uvicorn on uvloop, its built-in rate limits
raised, no chaos latency, a fresh database in a temporary folder); this process sends
``-n`` calls of each common route the gateway makes, one after the other on one
keep-alive connection, and prints the child's CPU milliseconds per call (user + system,
from ``/proc``): the sandbox's own cost, without the client's.
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ERP = "/sap/opu/odata/sap"
CRM = "/services/data/v60.0"
Call = Callable[[httpx.Client, int], httpx.Response]


def serve(system: str, data_dir: Path, port: int) -> None:
    """The child: one sandbox app on ``port`` until killed."""
    import uvicorn

    from sandbox import billing, crm, erp, support
    from sandbox.app import SandboxConfig

    config = SandboxConfig.for_system(
        system, port=port, data_dir=data_dir, gateway_url=None, fresh=True
    )
    apps = {
        "erp": lambda: erp.create_app(config, rate=1e6, burst=1_000_000),
        "billing": lambda: billing.create_app(config, rate_per_second=1e6, rate_burst=1e6),
        "crm": lambda: crm.create_app(config, per_second=1e6, burst=1_000_000, daily_limit=10**8),
        "support": lambda: support.create_app(config, rate_limit=10**8),
    }
    uvicorn.run(apps[system](), host="127.0.0.1", port=port, log_level="warning", loop="uvloop")


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _erp(http: httpx.Client) -> dict[str, Call]:
    http.auth = ("sandbox", "sandbox")
    fetch = http.get(f"{ERP}/API_SALES_ORDER_SRV/", headers={"X-CSRF-Token": "Fetch"})
    http.headers["X-CSRF-Token"] = fetch.headers["x-csrf-token"]
    bp = http.get(f"{ERP}/API_BUSINESS_PARTNER/A_BusinessPartner", params={"$top": "1"})
    party = bp.json()["d"]["results"][0]["BusinessPartner"]
    expand = "to_BusinessPartnerAddress,to_BusinessPartnerTax,to_Customer/to_CustomerSalesArea"

    def find_partner(c: httpx.Client, i: int) -> httpx.Response:
        flt = f"BusinessPartnerIDByExtSystem eq 'X-{i}'"
        url = f"{ERP}/API_BUSINESS_PARTNER/A_BusinessPartner"
        return c.get(url, params={"$filter": flt, "$expand": expand, "$format": "json"})

    def create_partner(c: httpx.Client, i: int) -> httpx.Response:
        body = {
            "BusinessPartnerCategory": "2",
            "BusinessPartnerFullName": f"Bench {i} GmbH",
            "OrganizationBPName1": f"Bench {i} GmbH",
            "BusinessPartnerIDByExtSystem": f"bench-{i}",
            "to_BusinessPartnerAddress": {"results": [{"Country": "DE"}]},
        }
        return c.post(f"{ERP}/API_BUSINESS_PARTNER/A_BusinessPartner", json=body)

    def find_order(c: httpx.Client, i: int) -> httpx.Response:
        flt = f"PurchaseOrderByCustomer eq 'PO-{i}' and SoldToParty eq '{party}'"
        url = f"{ERP}/API_SALES_ORDER_SRV/A_SalesOrder"
        return c.get(url, params={"$filter": flt, "$expand": "to_Item", "$format": "json"})

    def create_order(c: httpx.Client, i: int) -> httpx.Response:
        body = {
            "SalesOrderType": "OR",
            "SalesOrganization": "1010",
            "DistributionChannel": "10",
            "OrganizationDivision": "00",
            "SoldToParty": party,
            "PurchaseOrderByCustomer": f"PO-{i}",
            "TransactionCurrency": "EUR",
            "to_Item": {
                "results": [
                    {"SalesOrderItem": "10", "Material": "MAT-1001", "RequestedQuantity": "1"}
                ]
            },
        }
        return c.post(f"{ERP}/API_SALES_ORDER_SRV/A_SalesOrder", json=body)

    return {
        "GET A_BusinessPartner?$filter": find_partner,
        "POST A_BusinessPartner": create_partner,
        "GET A_SalesOrder?$filter": find_order,
        "POST A_SalesOrder": create_order,
    }


def _billing(http: httpx.Client) -> dict[str, Call]:
    http.headers["Authorization"] = "Bearer sk_test_crosswalk"
    price = http.get("/v1/prices", params={"limit": "1"}).json()["data"][0]["id"]
    customer = http.get("/v1/customers", params={"limit": "1"}).json()["data"][0]["id"]

    def search(c: httpx.Client, i: int) -> httpx.Response:
        return c.get("/v1/customers/search", params={"query": f"metadata['erp_bp']:'{i}'"})

    def create_customer(c: httpx.Client, i: int) -> httpx.Response:
        form = {"name": f"Bench {i}", "metadata[erp_bp]": str(i), "address[country]": "DE"}
        return c.post("/v1/customers", data=form, headers={"Idempotency-Key": f"c-{i}"})

    def create_subscription(c: httpx.Client, i: int) -> httpx.Response:
        form = {
            "customer": customer,
            "items[0][price]": price,
            "items[0][quantity]": "1",
            "collection_method": "send_invoice",
            "days_until_due": "30",
        }
        return c.post("/v1/subscriptions", data=form, headers={"Idempotency-Key": f"s-{i}"})

    return {
        "GET /v1/customers/search": search,
        "POST /v1/customers": create_customer,
        "POST /v1/subscriptions": create_subscription,
    }


def _crm(http: httpx.Client) -> dict[str, Call]:
    http.headers["Authorization"] = "Bearer 00DSANDBOX!crosswalk"
    soql = "SELECT Id FROM Opportunity LIMIT 1"
    opp = http.get(f"{CRM}/query", params={"q": soql}).json()["records"][0]["Id"]

    def get_opportunity(c: httpx.Client, i: int) -> httpx.Response:
        return c.get(f"{CRM}/sobjects/Opportunity/{opp}")

    def composite(c: httpx.Client, i: int) -> httpx.Response:
        account = {"Name": f"Bench {i}", "ERP_Customer_Id__c": f"B{i}"}
        subrequests = [
            {
                "method": "PATCH",
                "url": f"{CRM}/sobjects/Account/ERP_Customer_Id__c/B{i}",
                "referenceId": "account",
                "body": account,
            },
            {
                "method": "GET",
                "url": f"{CRM}/sobjects/Account/ERP_Customer_Id__c/B{i}",
                "referenceId": "read",
            },
        ]
        body = {"allOrNone": True, "compositeRequest": subrequests}
        return c.post(f"{CRM}/composite", json=body)

    return {"GET sobjects/Opportunity/{id}": get_opportunity, "POST composite": composite}


def _support(http: httpx.Client) -> dict[str, Call]:
    http.headers["Authorization"] = "Bearer sandbox"

    def create_or_update(c: httpx.Client, i: int) -> httpx.Response:
        org = {"name": f"Bench {i}", "external_id": f"bench-{i}"}
        return c.post("/api/v2/organizations/create_or_update", json={"organization": org})

    def update(c: httpx.Client, i: int) -> httpx.Response:
        fields = {"support_tier": "premium", "entitlement_status": "active"}
        body = {"organization": {"organization_fields": fields}}
        return c.put(f"/api/v2/organizations/{first}", json=body)

    orgs = http.get("/api/v2/organizations", params={"page[size]": "1"})
    first = orgs.json()["organizations"][0]["id"]
    return {
        "POST organizations/create_or_update": create_or_update,
        "PUT organizations/{id}": update,
    }


ROUTES = {"erp": _erp, "billing": _billing, "crm": _crm, "support": _support}


def bench(system: str, n: int, tmp: Path, only: str = "") -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", f"{system},{tmp / system},{port}"], cwd=ROOT
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    http.get("/_sandbox/chaos")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or child.poll() is not None:
                        raise SystemExit(f"the {system} sandbox did not start") from None
                    time.sleep(0.1)
            calls = ROUTES[system](http)
            counter = itertools.count()
            for label, call in calls.items():
                if only not in label:
                    continue
                for _ in range(max(1, n // 10)):  # warm-up
                    answer = call(http, next(counter))
                    if answer.status_code >= 400:
                        raise SystemExit(f"{system} {label}: {answer.status_code} {answer.text}")
                before = _cpu(child.pid)
                for _ in range(n):
                    answer = call(http, next(counter))
                    if answer.status_code >= 400:
                        raise SystemExit(f"{system} {label}: {answer.status_code} {answer.text}")
                spent = _cpu(child.pid) - before
                print(f"{system:8} {label:36} {spent / n * 1000:6.3f} ms CPU per call")
    finally:
        child.terminate()
        child.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--system", default="erp,billing,crm,support")
    parser.add_argument("-n", type=int, default=500, help="calls per route")
    parser.add_argument("--route", default="", help="only the routes whose name contains this")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        system, data_dir, port = args.serve.split(",")
        serve(system, Path(data_dir), int(port))
        return
    with tempfile.TemporaryDirectory() as tmp:
        for system in args.system.split(","):
            bench(system, args.n, Path(tmp), args.route)


if __name__ == "__main__":
    main()
