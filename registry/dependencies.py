"""Request dependencies shared by every domain: the unit of work and the caller."""

import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from registry.auth.cache import PrincipalCache
from registry.auth.principal import Principal
from registry.auth.scopes import Role
from registry.db import run_unit_of_work
from registry.errors import Conflict, Forbidden, NotFound, Unauthorized
from registry.models import Tenant
from registry.tenants.repository import TenantRepository

T = TypeVar("T")


def get_session(request: Request) -> Iterator[Session]:
    yield from run_unit_of_work(request.app.state.sessionmaker)


# scope="function": commit before the response is sent, so a 2xx means the data is durable.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def authenticate(request: Request) -> Principal:
    """The caller behind the bearer token. A token verified within the last
    `LORAPLEX_AUTH_CACHE_SECONDS` (1 s) comes from the cache on the event loop, with no signature
    check, query or thread hop; registry/auth/cache.py says what that means for a revoked client
    or a disabled tenant. Otherwise it is verified in a worker thread on a session of its own."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer token; get one from POST /oauth/token")
    state = request.app.state
    cache: PrincipalCache = state.principals
    principal = cache.get(token)
    if principal is None:
        epoch = cache.epoch()
        verified, expires_at = await run_in_threadpool(_verify, state, token)
        cache.put(token, verified, expires_at, epoch)
        principal = verified
    request.state.principal = principal
    return principal


def _verify(state: Any, token: str) -> tuple[Principal, float]:
    with state.sessionmaker() as session:
        verified: tuple[Principal, float] = state.verifier.verify_until(session, token)
        return verified


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def require_scope(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    async def dependency(principal: CurrentPrincipal) -> Principal:  # no I/O: no thread hop
        if scope not in principal.scopes:
            raise Forbidden(f"this token lacks the '{scope}' scope")
        return principal

    return dependency


@dataclass(frozen=True)
class TenantContext:
    """An authorized caller and the tenant named in the path."""

    principal: Principal
    tenant: Tenant


def tenant_access(scope: str, *, write: bool = False) -> Callable[..., TenantContext]:
    """Resolve `{tenant}` for a caller with `scope`; another tenant's slug answers 404."""

    def dependency(
        tenant: str,
        session: SessionDep,
        principal: Annotated[Principal, Depends(require_scope(scope))],
    ) -> TenantContext:
        row = TenantRepository(session).get_by_slug(tenant)
        if row is None or not principal.owns(row.id):
            raise NotFound(f"tenant '{tenant}' not found")
        if write and row.disabled:
            raise Conflict(f"tenant '{tenant}' is disabled; ops can enable it")
        return TenantContext(principal, row)

    return dependency


@dataclass(frozen=True)
class TenantRead:
    """`tenant_access` for a hot read: one statement in one thread hop.

    `run(work)` calls `work(session)` in a unit of work, all in one worker thread (each sync
    dependency or endpoint costs a hop of its own, and on a small machine the hops and the ORM
    cost more than the queries). `work` selects its rows joined to the tenant row that `visible()`
    picks (the `{tenant}` slug, and for a tenant's client only its own tenant, so another
    tenant's rows are never read) and hands the tenant id it found, or None, to `check`: 404
    exactly as `tenant_access`. The caller (authentication, scope) was settled on the event loop.
    """

    principal: Principal
    slug: str
    sessions: sessionmaker[Session]

    def visible(self) -> ColumnElement[bool]:
        clause = Tenant.slug == self.slug
        if self.principal.role is Role.TENANT:
            clause = clause & (Tenant.id == self.principal.tenant_id)
        return clause

    def check(self, tenant_id: uuid.UUID | None) -> uuid.UUID:
        if tenant_id is None or not self.principal.owns(tenant_id):
            raise NotFound(f"tenant '{self.slug}' not found")
        return tenant_id

    async def run(self, work: Callable[[Session], T]) -> T:
        return await run_in_threadpool(self._run, work)

    def _run(self, work: Callable[[Session], T]) -> T:
        units = run_unit_of_work(self.sessions)
        session = next(units)
        try:
            result = work(session)
        except BaseException as exc:
            units.throw(exc)  # rolls back and raises `exc` again
            raise
        for _ in units:  # commits, then the after-commit callbacks
            pass
        return result


def tenant_read(scope: str) -> Callable[..., Awaitable[TenantRead]]:
    """Like `tenant_access(scope)` for an `async def` read endpoint that calls `run` once."""

    async def dependency(
        request: Request,
        tenant: str,
        principal: Annotated[Principal, Depends(require_scope(scope))],
    ) -> TenantRead:
        return TenantRead(principal, tenant, request.app.state.sessionmaker)

    return dependency
