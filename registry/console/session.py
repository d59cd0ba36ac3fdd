"""Signing in and out, the signed-in caller, and CSRF.

The session is the registry's own access token (from the client-credentials grant, so it lives
`LORAPLEX_TOKEN_TTL_SECONDS`) in an HttpOnly, SameSite=Lax cookie scoped to /console; the client
secret is used once, at sign-in, and never stored. Every request re-verifies the token against
the live client, so a revoked client or a disabled tenant is signed out at its next page. Every
form carries `csrf`, an HMAC of the session token (a page from another site cannot read it);
the sign-in form, before there is a session, uses a double-submit cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from registry.auth.principal import Principal
from registry.auth.scopes import Role
from registry.dependencies import SessionDep, TenantContext
from registry.errors import Forbidden, NotFound, Unauthorized
from registry.models import Tenant
from registry.tenants.repository import TenantRepository

from .render import ConsoleRoute, page

COOKIE = "lpx_console"
LOGIN_COOKIE = "lpx_console_login"
PATH = "/console"

router = APIRouter(prefix=PATH, route_class=ConsoleRoute, include_in_schema=False)


def csrf_for(token: str) -> str:
    """The CSRF value of a session: anyone who can read it could read the cookie anyway."""
    return hmac.new(token.encode(), b"loraplex-console-csrf", hashlib.sha256).hexdigest()[:40]


@dataclass(frozen=True)
class ConsoleCaller:
    principal: Principal
    csrf: str
    tenant_slug: str | None  # a tenant client's own tenant

    @property
    def is_tenant(self) -> bool:
        return self.principal.role is Role.TENANT

    def can(self, scope: str) -> bool:
        return scope in self.principal.scopes


def _caller(request: Request, session: SessionDep) -> ConsoleCaller:
    token = request.cookies.get(COOKIE, "")
    if not token:
        raise Unauthorized("Sign in to continue.")
    try:
        principal: Principal = request.app.state.verifier.verify(session, token)
    except Unauthorized as exc:
        raise Unauthorized(f"Your session has ended ({exc.detail}); sign in again.") from exc
    slug = None
    if principal.tenant_id is not None:
        tenant = session.get(Tenant, principal.tenant_id)
        slug = tenant.slug if tenant else None
    caller = ConsoleCaller(principal, csrf_for(token), slug)
    request.state.console = caller
    request.state.principal = principal  # for the request log
    return caller


Caller = Annotated[ConsoleCaller, Depends(_caller)]


async def _checked(request: Request, caller: Caller) -> ConsoleCaller:
    """A state-changing request: the form's `csrf` must be this session's."""
    form = await request.form()
    sent = str(form.get("csrf", ""))
    if not hmac.compare_digest(sent, caller.csrf):
        raise Forbidden("This form is stale or came from another site; reload the page and retry.")
    return caller


FormCaller = Annotated[ConsoleCaller, Depends(_checked)]


def require(scope: str) -> Callable[[ConsoleCaller], ConsoleCaller]:
    def dependency(caller: Caller) -> ConsoleCaller:
        if not caller.can(scope):
            raise Forbidden(f"Your client lacks the '{scope}' scope.")
        return caller

    return dependency


def _tenant(
    session: Any, caller: ConsoleCaller, slug: str, scope: str, write: bool
) -> TenantContext:
    if not caller.can(scope):
        raise Forbidden(f"Your client lacks the '{scope}' scope.")
    row = TenantRepository(session).get_by_slug(slug)
    if row is None or not caller.principal.owns(row.id):
        raise NotFound(f"Tenant '{slug}' not found.")
    if write and row.disabled:
        raise Forbidden(f"Tenant '{slug}' is disabled; ops can enable it.")
    return TenantContext(caller.principal, row)


def tenant_page(scope: str) -> Callable[..., TenantContext]:
    """`{tenant}` for a page: scope first, then ownership (another tenant's slug is 404)."""

    def dependency(tenant: str, session: SessionDep, caller: Caller) -> TenantContext:
        return _tenant(session, caller, tenant, scope, write=False)

    return dependency


def tenant_form(scope: str) -> Callable[..., Coroutine[Any, Any, TenantContext]]:
    """`{tenant}` for a form post: CSRF, scope, ownership, and the tenant must be enabled."""

    async def dependency(tenant: str, session: SessionDep, caller: FormCaller) -> TenantContext:
        return _tenant(session, caller, tenant, scope, write=True)

    return dependency


def safe_next(value: str | None) -> str:
    """Only our own pages: an absolute or protocol-relative URL would be an open redirect."""
    if value and value.startswith(PATH) and not value.startswith("//") and "\\" not in value:
        return value
    return PATH


def login_page(request: Request, *, message: str = "", status_code: int = 200) -> HTMLResponse:
    nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = request.query_params.get("next") or (
        here if request.url.path != f"{PATH}/login" else PATH
    )
    response = page(
        request,
        "login.html",
        status_code=status_code,
        message=message,
        login_csrf=nonce,
        next=safe_next(target),
    )
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=3600,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return login_page(request)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, session: SessionDep) -> Response:
    form = await request.form()
    field = {k: str(form.get(k, "")) for k in ("client_id", "client_secret", "csrf", "next")}
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(field["csrf"], expected):
        return login_page(request, message="The sign-in form expired; try again.", status_code=403)
    if not field["client_id"] or not field["client_secret"]:
        return login_page(request, message="Enter a client id and its secret.", status_code=422)
    uri = request.url.replace(path="/oauth/token", query="")
    if uri.scheme == "http" and request.app.state.settings.token_endpoint_allows_http:
        uri = uri.replace(scheme="https")  # as /oauth/token does: this deployment opted out of TLS
    status, body, _ = await run_in_threadpool(
        request.app.state.token_server.issue,
        session,
        uri=str(uri),
        headers={},
        form={
            "grant_type": "client_credentials",
            "client_id": field["client_id"],
            "client_secret": field["client_secret"],
        },
    )
    if status != 200:
        reason = body.get("error_description") or body.get("error") or "refused"
        return login_page(
            request, message=f"Those credentials were refused: {reason}.", status_code=401
        )
    response = RedirectResponse(safe_next(field["next"]), status_code=303)
    response.set_cookie(
        COOKIE,
        body["access_token"],
        max_age=int(body.get("expires_in", 3600)),
        path=PATH,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(LOGIN_COOKIE, path=PATH)
    return response


@router.post("/logout")
async def logout(caller: FormCaller) -> Response:
    response = RedirectResponse(f"{PATH}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PATH)
    return response


def login_redirect(path: str) -> RedirectResponse:
    return RedirectResponse(f"{PATH}/login?next={quote(path)}", status_code=303)
