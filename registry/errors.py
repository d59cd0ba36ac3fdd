"""One error base class; one JSON shape: {"error": <ClassName>, "detail": <message>, ...extra}."""

from __future__ import annotations

from typing import Any, TypeVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger("loraplex.errors")


class LoraplexError(Exception):
    status_code = 400
    headers: dict[str, str] | None = None

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": type(self).__name__, "detail": self.detail, **self.extra}


class BadRequest(LoraplexError):
    status_code = 400


class Unauthorized(LoraplexError):
    status_code = 401
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(LoraplexError):
    status_code = 403


class NotFound(LoraplexError):
    status_code = 404


class Conflict(LoraplexError):
    status_code = 409


class Inconsistent(Conflict):
    """A row the data model guarantees is missing or belongs elsewhere (removed meanwhile, or a
    broken invariant). Raised explicitly: an `assert` would vanish under `python -O`."""


T = TypeVar("T")


def require(value: T | None, what: str) -> T:
    if value is None:
        raise Inconsistent(f"{what} is gone (removed meanwhile?); retry, or report it if it stays")
    return value


class PayloadTooLarge(LoraplexError):
    status_code = 413


class Unprocessable(LoraplexError):
    status_code = 422


class ServiceUnavailable(LoraplexError):
    status_code = 503


def _render(exc: LoraplexError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    async def on_loraplex_error(_: Request, exc: Exception) -> JSONResponse:
        return _render(exc if isinstance(exc, LoraplexError) else LoraplexError(str(exc)))

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        problems = []
        for err in exc.errors() if isinstance(exc, RequestValidationError) else []:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return _render(Unprocessable("; ".join(problems) or "invalid request"))

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, StarletteHTTPException):
            return await on_unexpected(_, exc)
        name = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        return JSONResponse(
            {"error": name, "detail": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", error=type(exc).__name__, exc_info=exc)
        return JSONResponse(
            {"error": "InternalError", "detail": "an unexpected error occurred; it was logged"},
            status_code=500,
        )

    app.add_exception_handler(LoraplexError, on_loraplex_error)
    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
