"""One error base class; one JSON shape: {"error": <ClassName>, "detail": <message>, ...extra}."""

from __future__ import annotations

from typing import Any, TypeVar

import psycopg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry.storage.base import StorageError, StorageUnavailable

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


class UnsupportedMediaType(LoraplexError):
    status_code = 415


class Unprocessable(LoraplexError):
    status_code = 422


RETRY_AFTER_SECONDS = 5


class ServiceUnavailable(LoraplexError):
    status_code = 503
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}


def outage(exc: BaseException) -> str | None:
    """The dependency `exc` says is down ("database" or "object store"), else None.

    Database: connection errors (refused, dropped, invalidated), pool timeouts, and the
    transient server-side errors psycopg files under OperationalError (shutdown, lock or
    statement timeouts, serialization failures). Object store: StorageUnavailable only; a
    missing object is not an outage.
    """
    if isinstance(exc, StorageUnavailable):
        return "object store"
    if isinstance(exc, (sa_exc.TimeoutError, psycopg.OperationalError)):
        return "database"
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        return "database"
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return "database"
    return None


class ErrorBody(BaseModel):
    """The shape of every error answer (some carry more keys, e.g. a dataset's `report`)."""

    error: str
    detail: str


# Declared once for every registry route (app.include_router(..., responses=...)), so the
# OpenAPI document lists the errors the routes really answer with, in their real shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "Bad request",
        401: "Missing, invalid or expired token",
        403: "Not allowed for this caller",
        404: "Not found (or another tenant's)",
        409: "Conflict with the current state",
        413: "Over a size limit or quota",
        415: "Unsupported content type",
        422: "Invalid input",
        503: "A dependency is unavailable",
    }.items()
}


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

    async def on_dependency_error(request: Request, exc: Exception) -> JSONResponse:
        """A dependency that is down is a 503 with Retry-After; the cause is logged, not sent."""
        dependency = outage(exc)
        if dependency is None:
            return await on_unexpected(request, exc)
        log.warning(
            "dependency_unavailable",
            dependency=dependency,
            error=type(exc).__name__,
            method=request.method,
            path=request.url.path,
        )
        return _render(ServiceUnavailable(f"the {dependency} is unavailable; retry later"))

    async def on_data_error(request: Request, exc: Exception) -> JSONResponse:
        """A value the database refuses (NUL in text, out of range) that validation let through:
        the caller's to fix, so 422 with the database's one-line reason (no SQL, no parameters)."""
        lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = (lines or [type(exc).__name__])[0][:200]
        log.warning("data_error", error=reason, method=request.method, path=request.url.path)
        return _render(Unprocessable(f"a value could not be stored: {reason}; correct it"))

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
    # Outages: the handler picks the first class in the exception's MRO, so the bases suffice.
    for dependency_error in (StorageError, sa_exc.DBAPIError, sa_exc.TimeoutError, psycopg.Error):
        app.add_exception_handler(dependency_error, on_dependency_error)
    for data_error in (sa_exc.DataError, psycopg.DataError):  # before their bases above
        app.add_exception_handler(data_error, on_data_error)
