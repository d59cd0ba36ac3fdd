"""The console's routes, in one router the registry app includes (see registry/app.py)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from registry.errors import NotFound

from . import (
    actions,
    audit_pages,
    backlog_pages,
    drift_pages,
    eval_pages,
    job_pages,
    split_actions,
    tenant_pages,
    version_pages,
)
from .render import STATIC_DIR, ConsoleRoute
from .session import PATH, Caller
from .session import router as session_router

_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
_STATIC = {p.name: p for p in STATIC_DIR.iterdir() if p.suffix in _TYPES}

static_router = APIRouter(prefix=PATH, route_class=ConsoleRoute, include_in_schema=False)


@static_router.get("/static/{name}")
def static(name: str) -> Response:
    """The console's own assets (no CDN, no build step)."""
    path = _STATIC.get(name)
    if path is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(
        path.read_bytes(),
        media_type=_TYPES[path.suffix],
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


fallback_router = APIRouter(prefix=PATH, route_class=ConsoleRoute, include_in_schema=False)


@fallback_router.get("/{rest:path}")
def unknown_page(rest: str, caller: Caller) -> Response:
    """Any other console URL: the 404 page (after sign-in, so it says nothing to strangers)."""
    if not rest:
        return RedirectResponse(PATH, status_code=308)
    raise NotFound(f"There is no console page at /console/{rest}.")


router = APIRouter()
for sub in (
    static_router,
    session_router,
    tenant_pages.router,
    version_pages.router,
    job_pages.router,
    eval_pages.router,
    drift_pages.router,
    audit_pages.router,
    backlog_pages.router,
    actions.router,
    split_actions.router,
    fallback_router,  # last: it matches every path
):
    router.include_router(sub)
