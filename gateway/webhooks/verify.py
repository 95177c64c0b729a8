"""Signature checks, one per vendor scheme (``policies/webhooks.toml`` names the scheme).

- ``stripe``: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]``, each ``v1`` an
  HMAC-SHA256 of ``"<t>.<raw body>"``; any matching ``v1`` is enough (Stripe sends
  several while a secret is being rolled).
- ``zendesk``: ``X-Zendesk-Webhook-Signature: base64(HMAC-SHA256(timestamp + body))``
  with the ISO-8601 ``X-Zendesk-Webhook-Signature-Timestamp``.
- ``bearer``: ``Authorization: Bearer <shared secret>`` (SAP Event Mesh, Salesforce CDC
  relay).

Every comparison is constant-time. The signature is checked before the timestamp, so a
forged request is reported as invalid, never as merely expired.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from gateway.governance.webhooks import WebhookPolicy
from gateway.webhooks.errors import (
    SignatureExpired,
    SignatureInvalid,
    SignatureMalformed,
    SignatureMissing,
)

__all__ = [
    "STRIPE_HEADER",
    "ZENDESK_SIGNATURE_HEADER",
    "ZENDESK_TIMESTAMP_HEADER",
    "verify_bearer",
    "verify_request",
    "verify_stripe",
    "verify_zendesk",
]

STRIPE_HEADER = "Stripe-Signature"
ZENDESK_SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
ZENDESK_TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"
_UNIX_TIME = re.compile(r"[0-9]{1,12}")


def _hmac(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def _check_age(signed_at: float, now: float, tolerance: float, header: str) -> None:
    skew = now - signed_at
    if abs(skew) > tolerance:
        direction = "old" if skew > 0 else "in the future"
        raise SignatureExpired(
            f"{header}: signed {abs(skew):.0f} s {direction}, more than the {tolerance:.0f} s "
            "tolerance; a replayed event, or the sender's clock is off"
        )


def verify_stripe(
    body: bytes,
    header: str | None,
    secret: str,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> None:
    """Raise unless ``header`` (``Stripe-Signature``) signs ``body`` with ``secret``."""
    if not header:
        raise SignatureMissing(f"{STRIPE_HEADER} header is missing")
    stamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            stamps.append(value.strip())
        elif key == "v1":
            signatures.append(value.strip())
    # at most 12 digits: unix time for the next 30,000 years, and int() stays cheap
    if len(stamps) != 1 or not _UNIX_TIME.fullmatch(stamps[0]):
        raise SignatureMalformed(f"{STRIPE_HEADER} needs exactly one integer t=<unix time>")
    if not signatures:
        raise SignatureMalformed(f"{STRIPE_HEADER} has no v1=<signature> (only v1 is accepted)")
    expected = _hmac(secret, stamps[0].encode() + b"." + body).hex().encode()
    # compare against every v1 (no early exit) so timing says nothing about which matched
    matched = False
    for signature in signatures:
        matched |= hmac.compare_digest(expected, signature.encode("ascii", "replace"))
    if not matched:
        raise SignatureInvalid(
            f"{STRIPE_HEADER}: no v1 signature matches the body; check the billing webhook "
            "secret in policies/webhooks.toml, and that the body was not changed in transit"
        )
    _check_age(int(stamps[0]), time.time() if now is None else now, tolerance, STRIPE_HEADER)


def _parse_iso(stamp: str) -> datetime:
    try:
        moment = datetime.fromisoformat(stamp.strip())
    except ValueError:
        raise SignatureMalformed(
            f"{ZENDESK_TIMESTAMP_HEADER} is not an ISO-8601 time: {stamp[:40]!r}"
        ) from None
    # Zendesk stamps are UTC; a stamp without an offset is read as UTC too
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def verify_zendesk(
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    secret: str,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> None:
    """Raise unless ``signature`` is base64 HMAC-SHA256 of ``timestamp + body``."""
    if not signature:
        raise SignatureMissing(f"{ZENDESK_SIGNATURE_HEADER} header is missing")
    if not timestamp:
        raise SignatureMissing(f"{ZENDESK_TIMESTAMP_HEADER} header is missing")
    try:
        given = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureMalformed(f"{ZENDESK_SIGNATURE_HEADER} is not base64") from None
    signed_at = _parse_iso(timestamp)
    expected = _hmac(secret, timestamp.encode() + body)
    if not hmac.compare_digest(expected, given):
        raise SignatureInvalid(
            f"{ZENDESK_SIGNATURE_HEADER} does not match timestamp + body; check the support "
            "webhook secret in policies/webhooks.toml"
        )
    _check_age(
        signed_at.timestamp(),
        time.time() if now is None else now,
        tolerance,
        ZENDESK_TIMESTAMP_HEADER,
    )


def verify_bearer(authorization: str | None, secret: str) -> None:
    """Raise unless ``authorization`` is ``Bearer <secret>``."""
    if not authorization:
        raise SignatureMissing("Authorization header is missing (expected Bearer <secret>)")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SignatureMalformed("Authorization header is not of the form 'Bearer <secret>'")
    if not hmac.compare_digest(token.strip().encode(), secret.encode()):
        raise SignatureInvalid(
            "Authorization bearer token does not match the webhook secret in "
            "policies/webhooks.toml"
        )


def verify_request(
    policy: WebhookPolicy,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float | None = None,
) -> None:
    """Check a request by ``policy.scheme``. ``headers`` must look names up without regard
    to case (``starlette.datastructures.Headers`` does)."""
    if policy.scheme == "stripe":
        verify_stripe(
            body,
            headers.get(STRIPE_HEADER),
            policy.secret,
            tolerance=policy.tolerance,
            now=now,
        )
    elif policy.scheme == "zendesk":
        verify_zendesk(
            body,
            headers.get(ZENDESK_SIGNATURE_HEADER),
            headers.get(ZENDESK_TIMESTAMP_HEADER),
            policy.secret,
            tolerance=policy.tolerance,
            now=now,
        )
    elif policy.scheme == "bearer":
        verify_bearer(headers.get("Authorization"), policy.secret)
    else:  # the policy loader only admits the schemes above
        raise ValueError(f"unknown webhook scheme {policy.scheme!r} for {policy.system}")
