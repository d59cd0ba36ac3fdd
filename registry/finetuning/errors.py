"""Errors in OpenAI's shape for the fine-tuning routes: `{"error": {message, type, param, code}}`.

`OpenAIRoute` is the routes' class: whatever a route or its dependencies raise (a registry error,
a request validation error) is answered in this shape, so the official client raises its usual
exception classes (`NotFoundError`, `BadRequestError`, ...). OpenAI answers invalid input with 400,
so the registry's 422 becomes 400 here; `param` names the field where one is known.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from registry.errors import LoraplexError, outage
from registry.validation_types import NUL_HELP, JsonNulScanner, nul_in_url

log = structlog.get_logger(__name__)

_TYPES = {
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "insufficient_scope"),
    404: ("invalid_request_error", "not_found"),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    503: ("server_error", "service_unavailable"),
}


class OpenAIError(LoraplexError):
    """An error with OpenAI's `code` and `param` (`status_code` set per instance)."""

    def __init__(
        self, status: int, message: str, *, code: str | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status
        self.code, self.param = code, param


def error_body(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    type_, default_code = _TYPES.get(status, ("invalid_request_error", None))
    return {
        "error": {"message": message, "type": type_, "param": param, "code": code or default_code}
    }


def render(exc: Exception) -> JSONResponse:
    if isinstance(exc, OpenAIError):
        body = error_body(exc.status_code, exc.detail, code=exc.code, param=exc.param)
        return JSONResponse(body, status_code=exc.status_code)
    if isinstance(exc, LoraplexError):
        status = 400 if exc.status_code == 422 else exc.status_code
        param = exc.extra.get("param")
        body = error_body(status, exc.detail, param=param if isinstance(param, str) else None)
        return JSONResponse(body, status_code=status, headers=exc.headers)
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        param = ".".join(where) or None
        message = f"{param}: {first.get('msg')}" if param else str(first.get("msg", "invalid"))
        return JSONResponse(error_body(400, message, param=param), status_code=400)
    down = outage(exc)
    if down is not None:
        log.warning("openai_api.dependency_down", dependency=down, error=str(exc))
        body = error_body(503, f"The {down} is unavailable; retry shortly.")
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
    raise exc


async def _nul(request: Request) -> str | None:
    """Why a NUL in the URL or in a JSON body is refused; None when there is none. JSON bodies
    here are small (job bodies); file uploads are multipart and checked row by row."""
    refusal = nul_in_url(request.scope.get("path", ""), request.scope.get("query_string", b""))
    if refusal is not None:
        return refusal
    if "json" in request.headers.get("content-type", "") and JsonNulScanner().feed(
        await request.body()
    ):
        return f"a string in the JSON body {NUL_HELP}"
    return None


class Rendered(Exception):  # noqa: N818 - not an error of its own: an answer on its way out
    """An error already rendered in OpenAI's shape, on its way to the app's handler.

    Raised (not returned) so it passes through the route's dependency exit stack: the unit of
    work sees an exception and rolls back, and nothing a refused request wrote is committed."""

    def __init__(self, response: JSONResponse) -> None:
        super().__init__("rendered")
        self.response = response


class OpenAIRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            refusal = await _nul(request)
            if refusal is not None:  # PostgreSQL text cannot hold NUL: refused up front
                raise Rendered(render(OpenAIError(400, refusal)))
            try:
                return await handler(request)
            except (LoraplexError, RequestValidationError) as exc:
                raise Rendered(render(exc)) from exc
            except Exception as exc:
                if outage(exc) is None:
                    raise
                raise Rendered(render(exc)) from exc

        return guarded


def install(app: FastAPI) -> None:
    """Every app that mounts these routes calls this once (the gateway, tests)."""

    async def rendered(_: Request, exc: Exception) -> Response:
        if isinstance(exc, Rendered):
            return exc.response
        raise exc

    app.add_exception_handler(Rendered, rendered)
