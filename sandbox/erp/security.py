"""Who may call the ERP sandbox, and how often: rate limit, Basic auth, CSRF sessions.

SAP Gateway binds a CSRF token to the session cookie it sets on ``X-CSRF-Token: Fetch``;
a write without both is refused with 403, ``x-csrf-token: Required`` and a plain-text body.
Sessions live in memory (a reset or restart forgets them, as a gateway restart does).
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from sandbox.app import SandboxState
from sandbox.erp.errors import ODataError

__all__ = [
    "CREDENTIALS",
    "SESSION_COOKIE",
    "CsrfRequiredError",
    "RateLimit",
    "authenticate",
    "check_csrf",
    "csrf_fetch",
    "csrf_required",
]

CREDENTIALS = ("sandbox", "sandbox")
SESSION_COOKIE = "SAP_SESSIONID_S4H_100"
#: CSRF sessions kept at once; the oldest is forgotten first (its client fetches again)
MAX_SESSIONS = 10_000


@dataclass(slots=True)
class RateLimit:
    """A token bucket over all callers: ``rate`` requests/s sustained, ``burst`` at once."""

    rate: float = 100.0
    burst: float = 200.0
    tokens: float = -1.0
    updated: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        if self.tokens < 0:
            self.tokens = self.burst
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def authenticate(request: Request) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    user = password = ""
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            user = password = ""
    good_user = hmac.compare_digest(user.encode(), CREDENTIALS[0].encode())
    good_password = hmac.compare_digest(password.encode(), CREDENTIALS[1].encode())
    if not (good_user and good_password):
        raise ODataError(
            401,
            "Logon failed: send HTTP Basic credentials of a user of client 100",
            headers={
                "WWW-Authenticate": 'Basic realm="SAP NetWeaver Application Server [S4H/100]"'
            },
        )


def sessions(state: SandboxState) -> OrderedDict[str, str]:
    sessions = state.extra.setdefault("csrf_sessions", OrderedDict())
    assert isinstance(sessions, OrderedDict)
    return sessions


def csrf_fetch(request: Request, state: SandboxState, response: Response) -> Response:
    """Answer ``X-CSRF-Token: Fetch``: the session's token, and the session cookie."""
    if request.headers.get("x-csrf-token", "").lower() != "fetch":
        return response
    known = sessions(state)
    sid = request.cookies.get(SESSION_COOKIE, "")
    if sid not in known:
        sid = secrets.token_urlsafe(24)
        known[sid] = secrets.token_urlsafe(18)
        while len(known) > MAX_SESSIONS:
            known.popitem(last=False)
    response.headers["x-csrf-token"] = known[sid]
    response.set_cookie(SESSION_COOKIE, sid, path="/", httponly=True)
    response.headers.append("set-cookie", "sap-usercontext=sap-client=100; path=/")
    return response


class CsrfRequiredError(Exception):
    """The write came without a valid CSRF token for its session."""


def check_csrf(request: Request, state: SandboxState) -> None:
    sid = request.cookies.get(SESSION_COOKIE, "")
    token = request.headers.get("x-csrf-token", "")
    expected = sessions(state).get(sid)
    if expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
        raise CsrfRequiredError(sid)


def csrf_required() -> Response:
    # SAP answers a failed CSRF check in plain text, with the header clients key on
    return Response(
        "CSRF token validation failed",
        status_code=403,
        media_type="text/plain",
        headers={"x-csrf-token": "Required"},
    )
