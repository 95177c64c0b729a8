"""Event plumbing shared by the sandbox systems: ids, and skipping events nobody receives."""

from __future__ import annotations

import uuid

from sandbox.webhooks import WebhookSender, random_uuid


def test_random_uuid_is_a_version_4_uuid_in_its_usual_form():
    seen = set()
    for _ in range(1000):
        text = random_uuid()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        seen.add(text)
    assert len(seen) == 1000


def test_a_sender_without_a_receiver_is_disabled_and_drops_what_it_is_given():
    def sign(body: bytes, unix_time: int) -> dict[str, str]:
        return {}

    quiet = WebhookSender("erp", None, sign)
    assert not quiet.enabled
    quiet.publish(b"{}")
    assert quiet.stats.queued == 0
    assert WebhookSender("erp", "http://127.0.0.1:9/webhooks/erp", sign).enabled
