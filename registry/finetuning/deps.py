"""The caller of the OpenAI-compatible routes: a tenant's token with the route's scope.

The tenant is the token's own (there is no `{tenant}` in OpenAI's paths); an ops or auditor
token is refused with 403, since these routes act as one tenant.

No `from __future__ import annotations` here: `scope` in the inner annotation must be evaluated
when the dependency is built, or FastAPI reads `principal` as a body field.
"""

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends

from registry.auth.principal import Principal
from registry.auth.scopes import Role
from registry.dependencies import SessionDep, TenantContext, require_scope
from registry.errors import Conflict, Forbidden
from registry.models import Tenant


def tenant_caller(scope: str, *, write: bool = False) -> Callable[..., TenantContext]:
    def dependency(
        session: SessionDep, principal: Annotated[Principal, Depends(require_scope(scope))]
    ) -> TenantContext:
        if principal.role is not Role.TENANT or principal.tenant_id is None:
            raise Forbidden("the OpenAI-compatible API takes a tenant's token")
        tenant = session.get(Tenant, principal.tenant_id)
        if tenant is None:
            raise Forbidden("this token's tenant no longer exists")
        if write and tenant.disabled:
            raise Conflict(f"tenant '{tenant.slug}' is disabled; ops can enable it")
        return TenantContext(principal, tenant)

    return dependency
