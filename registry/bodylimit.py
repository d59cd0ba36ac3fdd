"""Request body limits per route, enforced while the body streams in, before anything parses it.

FastAPI reads and parses a JSON body before any dependency (authentication included) runs, so
without this a caller with no token could make the registry hold any amount of memory. This
pure-ASGI middleware answers 413 as soon as a declared Content-Length, or the bytes actually
received, pass the route's limit; the body is then no longer read and the connection is closed.

It also answers 422 for a NUL character (which PostgreSQL text cannot hold) in the decoded path
or query, before any route runs, and for a NUL escape in a JSON body as it streams in.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.errors import LoraplexError, PayloadTooLarge, Unprocessable
from registry.settings import Settings
from registry.validation_types import NUL_HELP, JsonNulScanner, nul_in_url

KiB, MiB = 1 << 10, 1 << 20

# A route's limit in bytes; None: the route streams its body itself and enforces its own limits.
RouteLimits = Mapping[tuple[str, str], int | None]


def route_limits(settings: Settings) -> dict[tuple[str, str], int | None]:
    """Routes with other than the JSON default, keyed by (method, route template)."""
    return {
        ("POST", "/oauth/token"): settings.max_token_body_bytes,
        ("POST", "/v1/tenants/{tenant}/traffic"): settings.max_traffic_body_bytes,
        # multipart uploads stream to the object store under max_upload_bytes and the quota
        ("POST", "/v1/tenants/{tenant}/datasets"): None,
        ("POST", "/v1/tenants/{tenant}/adapters/{name}/versions"): None,
    }


def shown(limit: int) -> str:
    """1048576 -> '1 MiB', 4096 -> '4 KiB', 1000 -> '1,000 bytes'."""
    for unit, size in (("MiB", MiB), ("KiB", KiB)):
        if limit >= size and limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit:,} bytes"


class _Refused(Exception):
    """Raised into the app from `receive` once the body passes the limit or holds a NUL."""


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app, self.default = app, settings.max_json_body_bytes
        self.routes: RouteLimits = route_limits(settings)

    def limit_for(self, scope: Scope) -> int | None:
        """The matched route's limit (the router's own matching); the default when none matches."""
        app = scope.get("app")
        routes: list[BaseRoute] = getattr(getattr(app, "router", None), "routes", [])
        for route in routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                key = (scope["method"], getattr(route, "path", ""))
                return self.routes.get(key, self.default)
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nul = nul_in_url(scope.get("path", ""), scope.get("query_string", b""))
        if nul is not None:
            await _render(scope, receive, send, Unprocessable(nul), {})
            return
        declared = _content_length(scope)
        # Without a Content-Length the route's limit is looked up (every route matched in turn)
        # only once the app reads the body: a GET never does.
        lazy: Scope | None = dict(scope) if declared is None else None  # before routing edits it
        limit = None if lazy is not None else self.limit_for(scope)
        if lazy is None:
            if limit is None:
                await self.app(scope, receive, send)
                return
            if declared is not None and declared > limit:
                why = f"Content-Length is {declared:,} bytes; "
                await _refuse(scope, receive, send, limit, why)
                return

        received, started = 0, False
        refusal: LoraplexError | None = None
        scanner = JsonNulScanner() if _is_json(scope) else None

        async def limited_receive() -> Message:
            nonlocal received, refusal, lazy, limit
            if refusal is not None:
                return {"type": "http.disconnect"}
            message = await receive()
            if lazy is not None:
                limit, lazy = self.limit_for(lazy), None
            if limit is None:  # the route streams its body itself
                return message
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > limit:
                    refusal = _too_large(limit, "")
                elif scanner is not None and scanner.feed(chunk):
                    refusal = Unprocessable(f"a string in the JSON body {NUL_HELP}")
                if refusal is not None:
                    raise _Refused
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refusal is not None and not started:
                return  # the app's answer to a body it could not read; the refusal goes instead
            started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if refusal is None:
                raise
        if refusal is not None and not started:
            # The rest of the body is never read, so the connection cannot be reused.
            await _render(scope, receive, send, refusal, {"Connection": "close"})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


def _is_json(scope: Scope) -> bool:
    """Whether FastAPI would parse the body as JSON: no content type, or JSON's (`+json` too)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media = value.decode("latin-1").split(";")[0].strip().lower()
            return media == "application/json" or (
                media.startswith("application/") and media.endswith("+json")
            )
    return True


def _too_large(limit: int, why: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{why}request bodies to this route are limited to {shown(limit)}; send less per call"
    )


async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int, why: str) -> None:
    # The rest of the body is never read, so the connection cannot be reused.
    await _render(scope, receive, send, _too_large(limit, why), {"Connection": "close"})


async def _render(
    scope: Scope, receive: Receive, send: Send, error: LoraplexError, headers: dict[str, str]
) -> None:
    response = JSONResponse(error.body(), status_code=error.status_code, headers=headers)
    await response(scope, receive, send)
