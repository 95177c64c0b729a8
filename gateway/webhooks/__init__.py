"""Events pushed by the four systems: signature checks, canonical events, the endpoint."""

from gateway.webhooks.errors import (
    EventInvalid,
    SignatureError,
    SignatureExpired,
    SignatureInvalid,
    SignatureMalformed,
    SignatureMissing,
    WebhookError,
)
from gateway.webhooks.events import OWN_CLIENT, CanonicalEvent, map_event
from gateway.webhooks.receiver import MAX_BODY, Receipt, record_event, webhook_endpoint
from gateway.webhooks.verify import verify_bearer, verify_request, verify_stripe, verify_zendesk

__all__ = [
    "MAX_BODY",
    "OWN_CLIENT",
    "CanonicalEvent",
    "EventInvalid",
    "Receipt",
    "SignatureError",
    "SignatureExpired",
    "SignatureInvalid",
    "SignatureMalformed",
    "SignatureMissing",
    "WebhookError",
    "map_event",
    "record_event",
    "verify_bearer",
    "verify_request",
    "verify_stripe",
    "verify_zendesk",
    "webhook_endpoint",
]
