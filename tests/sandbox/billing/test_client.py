"""The official stripe client against the billing sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from sandbox.billing import create_app
from tests.sandbox.billing.helpers import CUSTOMERS, DEMO, KEY, _config
from tests.servers import serve

pytestmark = pytest.mark.anyio


async def test_the_official_stripe_client_works_against_the_sandbox(tmp_path: Path) -> None:
    stripe = pytest.importorskip("stripe")

    def calls(url: str) -> dict[str, Any]:
        client = stripe.StripeClient(KEY, base_addresses={"api": url}, max_network_retries=0)
        customer = client.v1.customers.create(
            params={
                "name": "Client Library GmbH",
                "email": "billing@client-library.example",
                "metadata": {"erp_bp": "1999777", "crm_account_id": "001CLIENT"},
                "address": {"country": "DE"},
                "preferred_locales": ["de-DE"],
            }
        )
        listed = client.v1.customers.list(params={"limit": 5})
        every = [c.id for c in listed.auto_paging_iter()]
        found = client.v1.customers.search(params={"query": "metadata['erp_bp']:'1999777'"})
        sub = client.v1.subscriptions.create(
            params={
                "customer": customer.id,
                "items": [{"price": "price_plus_monthly", "quantity": 3}],
                "metadata": {"erp_order": "5001234"},
            }
        )
        try:
            client.v1.customers.retrieve("cus_nothing")
        except stripe.InvalidRequestError as exc:
            missing = exc.code
        return {
            "customer": customer,
            "first_page": len(listed.data),
            "every": every,
            "found": [c.id for c in found.data],
            "sub": sub,
            "missing": missing,
        }

    async with serve(create_app(_config(tmp_path))) as url:
        result = await anyio.to_thread.run_sync(calls, url)
    customer = result["customer"]
    assert customer.metadata["erp_bp"] == "1999777"
    assert customer.address.country == "DE"
    assert result["first_page"] == 5
    assert len(result["every"]) == len(set(result["every"])) == CUSTOMERS + len(DEMO.orphans) + 1
    assert result["found"] == [customer.id]
    sub = result["sub"]
    assert sub.status == "active"
    assert sub["items"].data[0].quantity == 3
    assert sub.metadata["erp_order"] == "5001234"
    assert result["missing"] == "resource_missing"
