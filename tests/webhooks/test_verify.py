"""The three signature schemes against signatures computed by hand in tests/webhooks/samples."""

from __future__ import annotations

import time

import pytest
from starlette.datastructures import Headers

from canonical import System
from gateway.governance.webhooks import WebhookPolicy
from gateway.webhooks import (
    SignatureError,
    SignatureExpired,
    SignatureInvalid,
    SignatureMalformed,
    SignatureMissing,
    verify_bearer,
    verify_request,
    verify_stripe,
    verify_zendesk,
)
from tests.webhooks.samples import stripe_header, zendesk_headers

SECRET = "whsec_test_secret_value"
BODY = b'{"id":"evt_1","type":"invoice.finalized"}'


# ---------------------------------------------------------------- Stripe


def test_stripe_valid_signature_passes() -> None:
    verify_stripe(BODY, stripe_header(BODY, SECRET), SECRET)


def test_stripe_any_of_several_v1_values_matches() -> None:
    header = stripe_header(BODY, SECRET, extra_v1=2)
    assert header.count("v1=") == 3
    verify_stripe(BODY, header, SECRET)
    # a v0 (Stripe's test-mode legacy scheme) next to the v1s changes nothing
    verify_stripe(BODY, header + ",v0=deadbeef", SECRET)


def test_stripe_tampered_body_is_invalid() -> None:
    header = stripe_header(BODY, SECRET)
    with pytest.raises(SignatureInvalid, match="no v1 signature matches"):
        verify_stripe(BODY + b" ", header, SECRET)


def test_stripe_wrong_secret_is_invalid_and_the_secret_is_not_echoed() -> None:
    header = stripe_header(BODY, "whsec_someone_else")
    with pytest.raises(SignatureInvalid) as caught:
        verify_stripe(BODY, header, SECRET)
    assert SECRET not in str(caught.value)
    assert header.split("v1=")[1] not in str(caught.value)


def test_stripe_expired_and_future_timestamps() -> None:
    now = time.time()
    old = stripe_header(BODY, SECRET, t=int(now) - 301)
    with pytest.raises(SignatureExpired, match="old, more than the 300 s"):
        verify_stripe(BODY, old, SECRET, tolerance=300, now=now)
    future = stripe_header(BODY, SECRET, t=int(now) + 400)
    with pytest.raises(SignatureExpired, match="in the future"):
        verify_stripe(BODY, future, SECRET, tolerance=300, now=now)
    verify_stripe(BODY, stripe_header(BODY, SECRET, t=int(now) - 299), SECRET, now=now)


def test_stripe_forged_old_signature_reports_invalid_not_expired() -> None:
    old = stripe_header(BODY, "whsec_other", t=int(time.time()) - 10_000)
    with pytest.raises(SignatureInvalid):
        verify_stripe(BODY, old, SECRET)


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (None, SignatureMissing),
        ("", SignatureMissing),
        ("v1=abc", SignatureMalformed),
        ("t=12x,v1=abc", SignatureMalformed),
        ("t=1,t=2,v1=abc", SignatureMalformed),
        (f"t={int(time.time())}", SignatureMalformed),
        (f"t={int(time.time())},v1=\u00e9\u00e9", SignatureInvalid),
        ("garbage", SignatureMalformed),
    ],
)
def test_stripe_missing_or_malformed_header(header: str | None, error: type[Exception]) -> None:
    with pytest.raises(error):
        verify_stripe(BODY, header, SECRET)


# ---------------------------------------------------------------- Zendesk


def test_zendesk_valid_signature_passes() -> None:
    headers = zendesk_headers(BODY, SECRET)
    verify_zendesk(
        BODY,
        headers["X-Zendesk-Webhook-Signature"],
        headers["X-Zendesk-Webhook-Signature-Timestamp"],
        SECRET,
    )


@pytest.mark.parametrize("body", [BODY + b"\n", BODY.replace(b"evt_1", b"evt_2")])
def test_zendesk_tampered_body_is_invalid(body: bytes) -> None:
    headers = zendesk_headers(BODY, SECRET)
    with pytest.raises(SignatureInvalid):
        verify_zendesk(
            body,
            headers["X-Zendesk-Webhook-Signature"],
            headers["X-Zendesk-Webhook-Signature-Timestamp"],
            SECRET,
        )


def test_zendesk_wrong_secret_and_changed_timestamp_are_invalid() -> None:
    headers = zendesk_headers(BODY, "other_secret_value")
    with pytest.raises(SignatureInvalid) as caught:
        verify_zendesk(
            BODY,
            headers["X-Zendesk-Webhook-Signature"],
            headers["X-Zendesk-Webhook-Signature-Timestamp"],
            SECRET,
        )
    assert SECRET not in str(caught.value)
    mine = zendesk_headers(BODY, SECRET, at=time.time() - 5)
    later = zendesk_headers(BODY, SECRET)["X-Zendesk-Webhook-Signature-Timestamp"]
    with pytest.raises(SignatureInvalid):
        verify_zendesk(BODY, mine["X-Zendesk-Webhook-Signature"], later, SECRET)


def test_zendesk_expired_timestamp() -> None:
    now = time.time()
    headers = zendesk_headers(BODY, SECRET, at=now - 600)
    with pytest.raises(SignatureExpired, match="X-Zendesk-Webhook-Signature-Timestamp"):
        verify_zendesk(
            BODY,
            headers["X-Zendesk-Webhook-Signature"],
            headers["X-Zendesk-Webhook-Signature-Timestamp"],
            SECRET,
            tolerance=300,
            now=now,
        )


@pytest.mark.parametrize(
    ("signature", "timestamp", "error"),
    [
        (None, "2026-11-28T23:00:00Z", SignatureMissing),
        ("abc=", None, SignatureMissing),
        ("not base64!", "2026-11-28T23:00:00Z", SignatureMalformed),
        ("AAAA", "yesterday", SignatureMalformed),
    ],
)
def test_zendesk_missing_or_malformed(
    signature: str | None, timestamp: str | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        verify_zendesk(BODY, signature, timestamp, SECRET)


# ---------------------------------------------------------------- bearer


def test_bearer_token() -> None:
    verify_bearer(f"Bearer {SECRET}", SECRET)
    verify_bearer(f"bearer {SECRET}", SECRET)
    with pytest.raises(SignatureInvalid) as caught:
        verify_bearer("Bearer erp_other_secret", SECRET)
    assert "erp_other_secret" not in str(caught.value)
    assert SECRET not in str(caught.value)
    with pytest.raises(SignatureMissing):
        verify_bearer(None, SECRET)
    with pytest.raises(SignatureMalformed):
        verify_bearer(f"Basic {SECRET}", SECRET)
    with pytest.raises(SignatureMalformed):
        verify_bearer("Bearer ", SECRET)
    with pytest.raises(SignatureInvalid):
        verify_bearer("Bearer s\u00e9cret", SECRET)


# ---------------------------------------------------------------- by policy


def test_verify_request_follows_the_policy_scheme() -> None:
    stripe = WebhookPolicy(System.BILLING, "stripe", SECRET, 300.0)
    zendesk = WebhookPolicy(System.SUPPORT, "zendesk", SECRET, 300.0)
    bearer = WebhookPolicy(System.ERP, "bearer", SECRET, 300.0)
    verify_request(stripe, BODY, Headers({"stripe-signature": stripe_header(BODY, SECRET)}))
    verify_request(zendesk, BODY, Headers(zendesk_headers(BODY, SECRET)))
    verify_request(bearer, BODY, Headers({"authorization": f"Bearer {SECRET}"}))
    for policy in (stripe, zendesk, bearer):
        with pytest.raises(SignatureError):
            verify_request(policy, BODY, Headers({}))
