"""The support connector against the real support sandbox on loopback."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path

import httpx
import pytest

from actors.connector import Endpoint
from actors.errors import (
    Conflict,
    MalformedResponse,
    NotFound,
    Rejected,
    SystemUnavailable,
    Throttled,
)
from actors.messages import (
    CreateCase,
    EnsureCustomer,
    FindCustomerByXRef,
    FindCustomers,
    GetCases,
    GetCustomers,
    GetEntitlements,
    GetOrders,
    ListCustomers,
    SetEntitlement,
    UpdateCase,
    UpdateCustomer,
)
from actors.support import SupportConnector
from canonical.models import Case, Customer, Entitlement, System, XRef
from sandbox.app import SandboxConfig
from sandbox.demo import generate
from sandbox.support import create_app
from tests.servers import serve

pytestmark = pytest.mark.anyio

CUSTOMERS = 20
DEMO = generate(CUSTOMERS, 42)
IN_SUPPORT = [c for c in DEMO.companies if c.in_support]


@dataclasses.dataclass
class Sandbox:
    url: str
    control: httpx.AsyncClient
    connector: SupportConnector

    async def chaos(self, **settings: object) -> None:
        answer = await self.control.put("/_sandbox/chaos", json=settings)
        assert answer.status_code == 200

    async def calls(self) -> dict[str, int]:
        stats: dict[str, int] = (await self.control.get("/_sandbox/stats")).json()["by_route"]
        return stats

    async def api(self, path: str, **params: str) -> httpx.Response:
        return await self.control.get(
            "/api/v2" + path, params=params, headers={"Authorization": "Bearer sandbox"}
        )


@asynccontextmanager
async def sandbox(tmp_path: Path, **credentials: str) -> AsyncIterator[Sandbox]:
    config = SandboxConfig.for_system(
        "support", data_dir=tmp_path, gateway_url=None, customers=CUSTOMERS
    )
    async with (
        serve(create_app(config)) as url,
        httpx.AsyncClient(base_url=url) as control,
        SupportConnector(Endpoint(url, credentials=credentials, timeout=3.0)) as connector,
    ):
        yield Sandbox(url, control, connector)


def _delta(after: dict[str, int], before: dict[str, int], route: str) -> int:
    return after.get(route, 0) - before.get(route, 0)


# ---------------------------------------------------------------- reads


async def test_get_customers_batches_show_many_by_100(tmp_path):
    async with sandbox(tmp_path) as box:
        ids = tuple(str(c.support_id) for c in IN_SUPPORT)
        unknown = tuple(str(360000500000 + n) for n in range(130))
        before = await box.calls()
        found = await box.connector.handle(GetCustomers(ids + unknown + ("not-an-id",)))
        after = await box.calls()
        assert _delta(after, before, "GET /api/v2/organizations/show_many") == 2
        assert set(found) == set(ids)
        company = IN_SUPPORT[0]
        customer = found[str(company.support_id)]
        assert customer == Customer(
            system=System.SUPPORT,
            id=str(company.support_id),
            name=company.name,
            xref=XRef(erp=company.bp, support=str(company.support_id)),
            support_tier=company.support_tier,
            updated_at=customer.updated_at,
        )
        assert customer.updated_at is not None
        assert customer.updated_at.tzinfo is not None


async def test_get_entitlements_from_organization_fields(tmp_path):
    async with sandbox(tmp_path) as box:
        ids = tuple(str(c.support_id) for c in IN_SUPPORT)
        before = await box.calls()
        found = await box.connector.handle(GetEntitlements(ids))
        after = await box.calls()
        assert _delta(after, before, "GET /api/v2/organizations/show_many") == 1
        for company in IN_SUPPORT:
            assert found[str(company.support_id)] == Entitlement(
                system=System.SUPPORT,
                organization_id=str(company.support_id),
                status=company.entitlement_status,
                support_tier=company.support_tier,
                ends=company.entitlement_ends,
            )


async def test_list_customers_walks_every_page(tmp_path):
    async with sandbox(tmp_path) as box:
        seen: list[Customer] = []
        cursor = None
        for _ in range(20):
            page = await box.connector.handle(ListCustomers(cursor=cursor, limit=6))
            assert len(page.items) <= 6
            seen.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert [c.id for c in seen] == sorted(str(c.support_id) for c in IN_SUPPORT)
        assert {c.xref.erp for c in seen} == {c.bp for c in IN_SUPPORT}


async def test_find_customers_and_find_by_xref(tmp_path):
    async with sandbox(tmp_path) as box:
        company = IN_SUPPORT[3]
        word = company.name.split()[1]
        found = await box.connector.handle(FindCustomers(word.lower(), limit=50))
        assert str(company.support_id) in [c.id for c in found]
        assert all(word.lower() in c.name.lower() for c in found)
        assert len(await box.connector.handle(FindCustomers(company.name[:3], limit=1))) == 1
        assert await box.connector.handle(FindCustomers("zz-no-such-name")) == ()
        assert await box.connector.handle(FindCustomers("")) == ()
        by_xref = await box.connector.handle(FindCustomerByXRef(company.bp))
        assert by_xref is not None
        assert by_xref.id == str(company.support_id)
        gone = next(c for c in DEMO.companies if not c.in_support)
        assert await box.connector.handle(FindCustomerByXRef(gone.bp)) is None


async def test_get_cases_reads_each_organization_once(tmp_path):
    async with sandbox(tmp_path) as box:
        ids = tuple(str(c.support_id) for c in IN_SUPPORT)
        before = await box.calls()
        cases = await box.connector.handle(GetCases((*ids, "360000999999", "x")))
        after = await box.calls()
        reads = sum(
            _delta(after, before, f"GET /api/v2/organizations/{i}/tickets")
            for i in (*ids, "360000999999")
        )
        assert reads == len(ids) + 1
        assert set(cases) == set(ids)
        for company in IN_SUPPORT:
            got = cases[str(company.support_id)]
            assert sorted(c.id for c in got) == sorted(str(t.id) for t in company.tickets)
            for case in got:
                assert isinstance(case, Case)
                assert case.organization_id == str(company.support_id)
                assert case.status in ("new", "open", "pending", "hold", "solved", "closed")
                assert case.created_at is not None


# ---------------------------------------------------------------- writes


async def test_ensure_customer_twice_makes_one_organization(tmp_path):
    async with sandbox(tmp_path) as box:
        customer = Customer(
            system=System.ERP,
            id="1077777",
            name="Ensured Co GmbH",
            xref=XRef(erp="1077777"),
            support_tier="premium",
        )
        message = EnsureCustomer(
            idempotency_key="op-1:support", customer=customer, external_id="1077777"
        )
        first = await box.connector.handle(message)
        second = await box.connector.handle(message)
        assert first.id == second.id
        assert first.xref == XRef(erp="1077777", support=first.id)
        assert first.support_tier == "premium"
        found = await box.api("/organizations/search", external_id="1077777")
        assert len(found.json()["organizations"]) == 1


async def test_update_customer_and_set_entitlement(tmp_path):
    async with sandbox(tmp_path) as box:
        org_id = str(IN_SUPPORT[0].support_id)
        updated = await box.connector.handle(
            UpdateCustomer(
                "op-2:name", org_id, {"name": "Renamed Org", "support_tier": "enterprise"}
            )
        )
        assert updated.name == "Renamed Org"
        assert updated.support_tier == "enterprise"
        with pytest.raises(Rejected) as refused:
            await box.connector.handle(
                UpdateCustomer("op-2:terms", org_id, {"payment_terms": "NT30"})
            )
        assert "payment_terms" in refused.value.details
        entitlement = await box.connector.handle(
            SetEntitlement(
                "op-3:ent", org_id, "at_risk", support_tier="premium", ends=date(2027, 3, 31)
            )
        )
        assert entitlement == Entitlement(
            System.SUPPORT, org_id, "at_risk", "premium", date(2027, 3, 31)
        )
        again = await box.connector.handle(GetEntitlements((org_id,)))
        assert again[org_id] == entitlement


async def test_create_case_twice_makes_one_ticket_and_update_case(tmp_path):
    async with sandbox(tmp_path) as box:
        org = IN_SUPPORT[0]
        message = CreateCase(
            idempotency_key="op-4:case",
            organization_id=str(org.support_id),
            subject="Invoice missing",
            description="The November invoice never arrived.",
            priority="high",
            type="incident",
            external_id="op-4",
            tags=("billing",),
        )
        first = await box.connector.handle(message)
        second = await box.connector.handle(message)
        assert first == second
        assert first.external_id == "op-4"
        assert first.description == "The November invoice never arrived."
        assert first.tags == ("billing",)
        mine = await box.api("/tickets", external_id="op-4")
        assert len(mine.json()["tickets"]) == 1
        other = dataclasses.replace(message, subject="Something else")
        with pytest.raises(Conflict):
            await box.connector.handle(other)
        updated = await box.connector.handle(
            UpdateCase("op-5:esc", first.id, {"priority": "urgent", "status": "open"})
        )
        assert (updated.priority, updated.status) == ("urgent", "open")


async def test_unknown_message_type_is_a_type_error(tmp_path):
    async with sandbox(tmp_path) as box:
        with pytest.raises(TypeError, match="GetOrders"):
            await box.connector.handle(GetOrders(("1",)))
        assert await box.connector.ping() > 0


# ---------------------------------------------------------------- error mapping


async def test_vendor_answers_map_to_errors(tmp_path):
    async with sandbox(tmp_path) as box:
        connector = box.connector
        with pytest.raises(NotFound):
            await connector.handle(UpdateCase("k1", "999999", {"status": "open"}))
        with pytest.raises(NotFound):
            await connector.handle(SetEntitlement("k2", "not-a-number", "active"))
        with pytest.raises(Rejected) as invalid:
            await connector.handle(UpdateCase("k3", "5", {"priority": "critical"}))
        assert not isinstance(invalid.value, NotFound | Conflict)
        assert "priority" in invalid.value.details
        assert invalid.value.status == 422
        taken = IN_SUPPORT[1].name
        with pytest.raises(Conflict) as duplicate:
            await connector.handle(
                UpdateCustomer("k4", str(IN_SUPPORT[0].support_id), {"name": taken})
            )
        assert "name" in duplicate.value.details

        await box.chaos(throttle=True)
        with pytest.raises(Throttled) as throttled:
            await connector.handle(GetCustomers(("1",)))
        assert throttled.value.retry_after is not None
        assert throttled.value.retry_after >= 1

        await box.chaos(throttle=False, error_rate=1.0)
        with pytest.raises(SystemUnavailable) as failed:
            await connector.handle(ListCustomers())
        assert failed.value.status == 500

        await box.chaos(error_rate=0.0, malformed_rate=1.0)
        with pytest.raises(MalformedResponse):
            await connector.handle(ListCustomers())

        await box.chaos(malformed_rate=0.0, outage=True)
        with pytest.raises(SystemUnavailable):
            await connector.handle(GetCases((str(IN_SUPPORT[0].support_id),)))
        with pytest.raises(SystemUnavailable):
            await connector.handle(GetCases(tuple(str(c.support_id) for c in IN_SUPPORT)))

        await box.chaos(outage=False)
        assert (await connector.handle(ListCustomers(limit=1))).items


async def test_bad_credentials_are_rejected(tmp_path):
    async with sandbox(tmp_path, email="agent@example.com", api_token="wrong") as box:
        with pytest.raises(Rejected, match="credentials"):
            await box.connector.ping()
