"""Request dependencies shared by every domain: the unit of work and the caller."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from registry.auth.principal import Principal
from registry.db import run_unit_of_work
from registry.errors import Conflict, Forbidden, NotFound, Unauthorized
from registry.models import Tenant
from registry.tenants.repository import TenantRepository


def get_session(request: Request) -> Iterator[Session]:
    yield from run_unit_of_work(request.app.state.sessionmaker)


# scope="function": commit before the response is sent, so a 2xx means the data is durable.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def authenticate(request: Request, session: SessionDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token; get one from POST /oauth/token")
    principal: Principal = request.app.state.verifier.verify(session, token.strip())
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def require_scope(scope: str) -> Callable[[Principal], Principal]:
    def dependency(principal: CurrentPrincipal) -> Principal:
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
