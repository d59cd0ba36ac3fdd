"""Tenant tokens at the gateway: the registry's own verifier, cached briefly per token.

A verified token is trusted for `gateway_auth_cache_seconds` (default 5 s), never past its `exp`:
a revoked client or disabled tenant is refused within that time, and the hot path costs a cache
lookup instead of a signature check and a database read per request. A token already past `exp`
(the verifier allows 30 s leeway) is verified on every request. Refused tokens are kept in a
separate, smaller cache, so a flood of garbage tokens cannot evict good ones; and a client address
that keeps sending no valid token gets 429 before its tokens are even verified.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from joserfc import jws
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from registry.auth import scopes as sc
from registry.auth.tokens import TokenVerifier
from registry.errors import Unauthorized
from registry.models import Tenant
from serving.gateway.errors import GatewayError, forbidden, rate_limited, unauthorized
from serving.gateway.ratelimit import RateLimiter
from serving.gateway.ttl import TTLMemo

MAX_TOKENS = 10_000  # verified tokens kept
MAX_FAILURES = 1_000  # refused tokens kept, apart from the verified ones
FAILED = "Too many requests without a valid token from your address"


@dataclass(frozen=True)
class Caller:
    client_id: str
    tenant_id: uuid.UUID
    tenant_slug: str
    traffic_logging: bool


@dataclass(frozen=True)
class _Verified:
    caller: Caller
    expires_at: float  # the token's `exp`, seconds since the epoch


Outcome = _Verified | GatewayError


def token_expiry(token: str) -> float:
    """`exp` of a token the verifier has just accepted (so its payload is the signed one)."""
    claims = orjson.loads(jws.extract_compact(token.encode()).payload)
    return float(claims["exp"])


class GatewayAuth:
    def __init__(
        self,
        verifier: TokenVerifier,
        sessions: sessionmaker[Session],
        ttl_seconds: float,
        *,
        failures: RateLimiter | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.verifier = verifier
        self.sessions = sessions
        self.failures = failures or RateLimiter(rate=1.0, burst=20)  # per client address
        self.wall = wall
        self._good: TTLMemo[str, Outcome] = TTLMemo(
            maxsize=MAX_TOKENS, ttl=ttl_seconds, keep_for=self._keep_verified
        )
        self._bad: TTLMemo[str, Outcome] = TTLMemo(
            maxsize=MAX_FAILURES, ttl=ttl_seconds, keep_for=_keep_refused
        )

    def _keep_verified(self, outcome: Outcome) -> float:
        if isinstance(outcome, GatewayError):
            return 0.0
        return outcome.expires_at - self.wall()

    async def caller(self, authorization: str | None, address: str = "") -> Caller:
        """The tenant behind `Authorization`; 401/403, or 429 for an address that keeps failing."""
        token = ""
        if authorization and authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
            known = self._good.peek(token)
            if isinstance(known, _Verified) and known.expires_at > self.wall():
                return known.caller
        wait = self.failures.wait(address)
        if wait > 0:
            raise rate_limited(wait, FAILED)
        if not token:
            outcome: Outcome = unauthorized(
                "Missing bearer token: send 'Authorization: Bearer <access token>'."
            )
        else:
            outcome = await self._bad.get(
                token,
                lambda: self._good.get(token, lambda: run_in_threadpool(self._verify, token)),
            )
        if isinstance(outcome, GatewayError):
            self.failures.take(address)
            raise outcome
        return outcome.caller

    def _verify(self, token: str) -> Outcome:
        caller = self._principal(token)
        if isinstance(caller, GatewayError):
            return caller
        return _Verified(caller, token_expiry(token))

    def _principal(self, token: str) -> Caller | GatewayError:
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


def _keep_refused(outcome: Outcome) -> float:
    return float("inf") if isinstance(outcome, GatewayError) else 0.0
