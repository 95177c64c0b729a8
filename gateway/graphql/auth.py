"""Authentication: ``Authorization: Bearer <API key or JWT>`` -> the ``Client`` asking.

An API key is looked up by its SHA-256 digest in ``policies/clients.toml``. A JWT (three
base64url parts) is verified against its issuer's key: the issuer is read from the
unverified ``iss`` claim only to pick the key; the signature, ``exp``, ``nbf``, ``aud``
and ``iss`` are then checked by PyJWT with the issuer's single allowed algorithm, so a
token cannot choose its own algorithm (no ``none``, no HS256-with-the-public-key).
The token's scopes (``scope`` as a space-separated string, or ``scp`` as a list) are cut
down to what the issuer may grant.

Every failure raises ``CodedError(UNAUTHENTICATED)`` with a message that says what to fix.
"""

from __future__ import annotations

from typing import Any

import jwt

from gateway.governance.clients import Client, ClientsPolicy, Issuer
from gateway.graphql.errors import CodedError, ErrorCode

__all__ = ["Authenticator"]

#: seconds of clock skew tolerated on exp / nbf
LEEWAY_SECONDS = 30


def _unauthenticated(message: str) -> CodedError:
    return CodedError(ErrorCode.UNAUTHENTICATED, message)


class Authenticator:
    """Turns an ``Authorization`` header into a ``Client``, or raises UNAUTHENTICATED."""

    def __init__(self, policy: ClientsPolicy) -> None:
        self.policy = policy

    def authenticate(self, authorization: str | None) -> Client:
        if not authorization:
            raise _unauthenticated("No credentials: send 'Authorization: Bearer <API key or JWT>'.")
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise _unauthenticated(
                "Unsupported Authorization header: use 'Bearer <API key or JWT>'."
            )
        if credential.count(".") == 2:
            return self._from_jwt(credential)
        client = self.policy.client_for_api_key(credential)
        if client is None:
            raise _unauthenticated("Unknown API key: check the key or ask for one to be issued.")
        return client

    def _from_jwt(self, token: str) -> Client:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise _unauthenticated(f"Malformed JWT: {exc}.") from None
        issuer_name = unverified.get("iss")
        issuer = self.policy.issuers.get(issuer_name) if isinstance(issuer_name, str) else None
        if issuer is None:
            raise _unauthenticated(
                f"JWT issuer {issuer_name!r} is not trusted; configure it in policies/clients.toml."
            )
        claims = self._verify(token, issuer)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise _unauthenticated("JWT has no 'sub' claim naming the client.")
        scopes = _token_scopes(claims)
        if "*" not in issuer.allowed_scopes:
            scopes &= issuer.allowed_scopes
        return Client(
            id=f"{subject}@{issuer.issuer}",
            name=str(claims.get("name") or subject),
            scopes=scopes,
            introspection=issuer.introspection,
            graphiql=issuer.graphiql,
            persisted_only=issuer.persisted_only,
            via="jwt",
            requests_per_minute=issuer.requests_per_minute,
            cost_per_minute=issuer.cost_per_minute,
        )

    @staticmethod
    def _verify(token: str, issuer: Issuer) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                issuer.key,
                algorithms=[issuer.algorithm],
                audience=issuer.audience,
                issuer=issuer.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthenticated("JWT has expired: get a new token.") from None
        except jwt.ImmatureSignatureError:
            raise _unauthenticated("JWT is not valid yet (nbf is in the future).") from None
        except jwt.InvalidAudienceError:
            raise _unauthenticated(f"JWT audience does not include {issuer.audience!r}.") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _unauthenticated(f"JWT lacks the required claim {exc.claim!r}.") from None
        except jwt.InvalidAlgorithmError:
            raise _unauthenticated(
                f"JWT algorithm is not allowed; {issuer.issuer} signs with {issuer.algorithm}."
            ) from None
        except jwt.InvalidSignatureError:
            raise _unauthenticated("JWT signature does not verify: the token is forged.") from None
        except jwt.PyJWTError as exc:
            raise _unauthenticated(f"JWT rejected: {exc}.") from None
        return claims


def _token_scopes(claims: dict[str, Any]) -> frozenset[str]:
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, list):
        return frozenset(s for s in scp if isinstance(s, str))
    if isinstance(scp, str):
        return frozenset(scp.split())
    return frozenset()
