"""Verifying access tokens: signature, type, issuer, audience, expiry; then the live client."""

from __future__ import annotations

import uuid

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.orm import Session

from registry.auth import scopes as sc
from registry.auth.principal import Principal
from registry.auth.repository import ClientRepository
from registry.errors import Unauthorized


class TokenVerifier:
    def __init__(self, keys: KeySet, *, issuer: str, audience: str, leeway: int = 30) -> None:
        self.keys = keys
        self.registry = jwt.JWTClaimsRegistry(
            leeway=leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            client_id={"essential": True},
            role={"essential": True},
        )

    def verify(self, session: Session, token: str) -> Principal:
        return self.verify_until(session, token)[0]

    def verify_until(self, session: Session, token: str) -> tuple[Principal, float]:
        """The caller, and the token's `exp` (seconds since the epoch): how long it may be kept."""
        try:
            decoded = jwt.decode(token, self.keys, algorithms=["RS256"])
            self.registry.validate(decoded.claims)
        except JoseError as exc:
            raise Unauthorized(f"invalid access token: {exc.description or exc.error}") from exc
        except ValueError as exc:  # malformed token text
            raise Unauthorized(f"invalid access token: {exc}") from exc
        if decoded.header.get("typ") != "at+jwt":
            raise Unauthorized("invalid access token: not an access token (typ must be at+jwt)")
        claims = decoded.claims
        found = ClientRepository(session).get_active(str(claims["client_id"]))
        if found is None:
            raise Unauthorized("the client of this token is unknown or revoked")
        client, tenant = found
        if tenant is not None and tenant.disabled:
            raise Unauthorized(f"tenant '{tenant.slug}' is disabled")
        role = sc.Role(client.role)
        # The token's scope is bounded by what the client holds *now*.
        scopes = sc.parse(claims.get("scope")) & sc.parse(client.scopes)
        principal = Principal(
            subject=client.client_id,
            role=role,
            scopes=scopes,
            tenant_id=uuid.UUID(str(tenant.id)) if tenant else None,
        )
        return principal, float(claims["exp"])
