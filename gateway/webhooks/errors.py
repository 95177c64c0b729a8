"""Why an incoming webhook was refused.

::

    WebhookError
    ├── SignatureError            -> 401, nothing stored
    │   ├── SignatureMissing      the scheme's header is absent
    │   ├── SignatureMalformed    the header is there but cannot be parsed
    │   ├── SignatureInvalid      no signature / token matches the secret
    │   └── SignatureExpired      authentic, but signed too long ago (or in the future)
    └── EventInvalid              authentic JSON that is not an event of that vendor -> 400

Messages name the header and what was wrong; they never carry the secret or the
expected signature.
"""

from __future__ import annotations

__all__ = [
    "EventInvalid",
    "SignatureError",
    "SignatureExpired",
    "SignatureInvalid",
    "SignatureMalformed",
    "SignatureMissing",
    "WebhookError",
]


class WebhookError(Exception):
    """An incoming webhook cannot be accepted."""


class SignatureError(WebhookError):
    """The request does not prove it comes from the system it claims."""


class SignatureMissing(SignatureError):
    """The scheme's signature header is absent."""


class SignatureMalformed(SignatureError):
    """The signature header is present but not in the scheme's form."""


class SignatureInvalid(SignatureError):
    """No signature (or bearer token) matches the shared secret."""


class SignatureExpired(SignatureError):
    """The signature is valid but its timestamp is outside the tolerance (a replay?)."""


class EventInvalid(WebhookError, ValueError):
    """The body is authentic but not an event this vendor sends (a field is missing)."""
