"""The cross-reference registry: link, resolve, merge, search, list."""

from __future__ import annotations

import pytest

from canonical import System, XRef
from gateway.store import Store, XRefConflict, XRefRecord

from .conftest import FakeClock

pytestmark = pytest.mark.anyio


async def test_link_creates_then_fills_in_ids(store: Store) -> None:
    created = await store.link({System.ERP: "1000042"}, name="Acme GmbH")
    assert created.canonical_id.startswith("cw_")
    assert created.ids() == {System.ERP: "1000042"}

    filled = await store.link({System.ERP: "1000042", System.BILLING: "cus_A"})
    assert filled.canonical_id == created.canonical_id
    assert filled.name == "Acme GmbH"  # kept when not given
    assert filled.to_xref() == XRef(erp="1000042", billing="cus_A")

    again = await store.link({System.BILLING: "cus_A"})  # linking known ids is a no-op
    assert again.ids() == filled.ids()

    assert await store.resolve(System.BILLING, "cus_A") == created.canonical_id
    assert await store.resolve(System.CRM, "001A") is None
    assert await store.get_xref(created.canonical_id) == again
    assert await store.get_xref("cw_unknown") is None


async def test_link_with_a_chosen_canonical_id(store: Store) -> None:
    record = await store.link({System.CRM: "001A"}, canonical_id="cw_acme")
    assert record.canonical_id == "cw_acme"
    record = await store.link({System.SUPPORT: "9001"}, canonical_id="cw_acme")
    assert record.ids() == {System.CRM: "001A", System.SUPPORT: "9001"}
    with pytest.raises(XRefConflict, match="already belong to cw_acme"):
        await store.link({System.CRM: "001A"}, canonical_id="cw_other")


async def test_link_merges_records_found_separately(store: Store, clock: FakeClock) -> None:
    from_erp = await store.link({System.ERP: "1000042"}, name="Acme")
    clock.advance(1)
    from_crm = await store.link({System.CRM: "001A", System.SUPPORT: "9001"})
    assert from_erp.canonical_id != from_crm.canonical_id

    merged = await store.link({System.ERP: "1000042", System.CRM: "001A"})
    # The older record survives; the other's canonical id still resolves to it.
    assert merged.canonical_id == from_erp.canonical_id
    assert merged.ids() == {System.ERP: "1000042", System.CRM: "001A", System.SUPPORT: "9001"}
    assert merged.aliases == (from_crm.canonical_id,)
    assert await store.get_xref(from_crm.canonical_id) == merged
    assert await store.resolve(System.SUPPORT, "9001") == merged.canonical_id
    page = await store.list_xrefs()
    assert [r.canonical_id for r in page.items] == [merged.canonical_id]


async def test_conflicting_ids_are_refused_and_nothing_changes(store: Store) -> None:
    first = await store.link({System.ERP: "1000042", System.BILLING: "cus_A"})
    await store.link({System.ERP: "1000043", System.BILLING: "cus_B"})
    with pytest.raises(XRefConflict, match="two billing ids"):
        await store.link({System.ERP: "1000042", System.BILLING: "cus_B"})
    with pytest.raises(XRefConflict):
        await store.link({System.ERP: "1000042", System.BILLING: "cus_C"})
    assert await store.get_xref(first.canonical_id) == first
    assert await store.resolve(System.BILLING, "cus_C") is None


async def test_search_by_id_prefix_or_name(store: Store) -> None:
    acme = await store.link({System.ERP: "1000042", System.CRM: "001ACME"}, name="Acme GmbH")
    globex = await store.link({System.ERP: "1000077"}, name="Globex 100% Corp")
    assert await store.search_xref("001acme") == [acme]
    assert {r.canonical_id for r in await store.search_xref("10000")} == {
        acme.canonical_id,
        globex.canonical_id,
    }
    assert await store.search_xref("acme") == [acme]
    assert await store.search_xref("100%") == [globex]  # % is literal, not a wildcard
    assert await store.search_xref("cw_") != []
    assert await store.search_xref("nothing") == []


async def test_list_xrefs_pages_with_a_cursor(store: Store) -> None:
    ids = [f"cw_{i:03d}" for i in range(25)]
    async with store.transaction() as tx:
        for i, cid in enumerate(ids):
            await tx.link({System.ERP: str(1000000 + i)}, canonical_id=cid)
    seen: list[str] = []
    after = None
    while True:
        page = await store.list_xrefs(limit=10, after=after)
        seen += [r.canonical_id for r in page.items]
        if page.next_cursor is None:
            break
        after = page.next_cursor
    assert seen == ids


async def test_merges_chain_and_link_answers_what_is_stored(store: Store, clock: FakeClock) -> None:
    async def link_and_check(ids: dict[System, str], **kwargs: str) -> XRefRecord:
        record = await store.link(ids, **kwargs)
        assert await store.get_xref(record.canonical_id) == record
        return record

    oldest = await link_and_check({System.ERP: "1000042"}, name="Acme")
    clock.advance(1)
    middle = await link_and_check({System.CRM: "001A"})
    clock.advance(1)
    newest = await link_and_check({System.SUPPORT: "9001"}, name="Acme Support")
    clock.advance(1)
    # The two newer records merge first; then the result merges into the oldest.
    step = await link_and_check({System.CRM: "001A", System.SUPPORT: "9001"})
    assert (step.canonical_id, step.aliases) == (middle.canonical_id, (newest.canonical_id,))
    clock.advance(1)
    final = await link_and_check({System.ERP: "1000042", System.SUPPORT: "9001"}, name="ACME")
    assert final.canonical_id == oldest.canonical_id
    assert set(final.aliases) == {middle.canonical_id, newest.canonical_id}
    assert final.ids() == {System.ERP: "1000042", System.CRM: "001A", System.SUPPORT: "9001"}
    assert final.name == "ACME"
    for alias in (middle.canonical_id, newest.canonical_id):
        assert await store.get_xref(alias) == final
    unchanged = await link_and_check({System.CRM: "001A"})
    assert unchanged == final  # nothing new: not even updated_at moves
