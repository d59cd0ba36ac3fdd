"""Tenant tokens at the gateway: the registry's own verifier, cached briefly per token.

A verified token is trusted for `gateway_auth_cache_seconds` (default 5 s): a revoked client or
disabled tenant is refused within that time, and the hot path costs a cache lookup instead of a
signature check and a database read per request. The cache does not read `exp`: a token that
expires meanwhile is trusted up to that long past it (the verifier itself allows 30 s leeway).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from registry.auth import scopes as sc
from registry.auth.tokens import TokenVerifier
from registry.errors import Unauthorized
from registry.models import Tenant
from serving.gateway.errors import GatewayError, forbidden, unauthorized
from serving.gateway.ttl import TTLMemo

MAX_TOKENS = 10_000


@dataclass(frozen=True)
class Caller:
    client_id: str
    tenant_id: uuid.UUID
    tenant_slug: str
    traffic_logging: bool


class GatewayAuth:
    def __init__(
        self, verifier: TokenVerifier, sessions: sessionmaker[Session], ttl_seconds: float
    ) -> None:
        self.verifier = verifier
        self.sessions = sessions
        self._memo: TTLMemo[str, Caller | GatewayError] = TTLMemo(
            maxsize=MAX_TOKENS, ttl=ttl_seconds
        )

    async def caller(self, authorization: str | None) -> Caller:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise unauthorized("Missing bearer token: send 'Authorization: Bearer <access token>'.")
        token = authorization[7:].strip()
        outcome = await self._memo.get(token, lambda: run_in_threadpool(self._verify, token))
        if isinstance(outcome, GatewayError):
            raise outcome
        return outcome

    def _verify(self, token: str) -> Caller | GatewayError:
        with self.sessions() as session:
            try:
                principal = self.verifier.verify(session, token)
            except Unauthorized as exc:
                return unauthorized(exc.detail)
            if principal.role is not sc.Role.TENANT or principal.tenant_id is None:
                return forbidden("Inference is for tenant clients; this token is not a tenant's.")
            if sc.INFERENCE not in principal.scopes:
                return forbidden("This token lacks the 'inference' scope.")
            tenant = session.get(Tenant, principal.tenant_id)
            if tenant is None:  # the verifier checked it a moment ago: removed meanwhile
                return unauthorized("This token's tenant no longer exists.")
            return Caller(
                client_id=principal.subject,
                tenant_id=tenant.id,
                tenant_slug=tenant.slug,
                traffic_logging=tenant.traffic_logging,
            )
