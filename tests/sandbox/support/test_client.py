"""The zenpy client against the support sandbox."""

from __future__ import annotations

import anyio
import pytest

from tests.sandbox.support.helpers import IN_SUPPORT, running

pytestmark = pytest.mark.anyio


async def test_zenpy_works_against_the_sandbox(tmp_path, monkeypatch):
    """Zendesk's popular Python client, pointed at the sandbox by its own override switches."""
    zenpy = pytest.importorskip("zenpy")
    from zenpy.lib.api_objects import Comment, Organization, Ticket

    org = IN_SUPPORT[0]
    async with running(tmp_path) as (api, _):
        monkeypatch.setenv("ZENPY_FORCE_SCHEME", "http")
        monkeypatch.setenv("ZENPY_FORCE_NETLOC", api.base_url.netloc.decode())

        def use_zenpy() -> None:
            client = zenpy.Zenpy(subdomain="sandbox", email="agent@example.com", token="sandbox")
            assert client.users.me().email == "agent@example.com"
            read = client.organizations(id=org.support_id)
            assert (read.name, read.external_id) == (org.name, org.bp)
            assert read.organization_fields["support_tier"] == org.support_tier
            names = [o.name for o in client.organizations()]
            assert sorted(names) == sorted(c.name for c in IN_SUPPORT)
            audit = client.tickets.create(
                Ticket(
                    subject="Sent by zenpy",
                    comment=Comment(body="Created through the real client."),
                    organization_id=org.support_id,
                    priority="high",
                )
            )
            ticket = client.tickets(id=audit.ticket.id)
            assert (ticket.subject, ticket.description) == (
                "Sent by zenpy",
                "Created through the real client.",
            )
            ticket.status = "pending"
            client.tickets.update(ticket)
            assert client.tickets(id=ticket.id).status == "pending"
            listed = [t.id for t in client.tickets()]
            assert ticket.id in listed
            assert len(listed) == len(set(listed)) == 1 + sum(len(c.tickets) for c in IN_SUPPORT)
            made = client.organizations.create_or_update(
                Organization(name="Zenpy Org Ltd", external_id="1088888")
            )
            assert made.external_id == "1088888"
            tiers = [p.title for p in client.sla_policies()]
            assert tiers == ["Enterprise support", "Premium support", "Standard support"]

        await anyio.to_thread.run_sync(use_zenpy)
