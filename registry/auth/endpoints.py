from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from registry.auth.server import parse_token_form
from registry.dependencies import SessionDep

router = APIRouter(tags=["auth"])


@router.post("/oauth/token")
async def token(request: Request, session: SessionDep) -> JSONResponse:
    """OAuth2 client-credentials grant (client_secret_basic or client_secret_post)."""
    # urlencoded only; the body itself is capped by LORAPLEX_MAX_TOKEN_BODY_BYTES (bodylimit.py)
    fields = parse_token_form(request.headers.get("content-type"), await request.body())
    uri = request.url
    if uri.scheme == "http" and request.app.state.settings.token_endpoint_allows_http:
        uri = uri.replace(scheme="https")  # authlib insists on TLS; this deployment opted out
    status, body, headers = await run_in_threadpool(
        request.app.state.token_server.issue,
        session,
        uri=str(uri),
        headers=request.headers,
        form=fields,
    )
    return JSONResponse(body, status_code=status, headers=headers)


@router.get("/.well-known/jwks.json")
def jwks(request: Request) -> dict[str, Any]:
    keys: dict[str, Any] = request.app.state.signing_keys.jwks()
    return keys
