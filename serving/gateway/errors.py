"""Errors in OpenAI's shape, so the official clients raise their usual exception types."""

from __future__ import annotations

import math

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class GatewayError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.headers = headers or {}

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        body = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return JSONResponse(
            {"error": body}, status_code=self.status, headers={**self.headers, **(headers or {})}
        )


def bad_request(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, type_="invalid_request_error", param=param)


def unauthorized(message: str) -> GatewayError:
    return GatewayError(401, message, type_="authentication_error", code="invalid_api_key")


def forbidden(message: str) -> GatewayError:
    return GatewayError(403, message, type_="permission_error", code="insufficient_scope")


def model_not_found(model: str, why: str = "") -> GatewayError:
    text = f"The model '{model}' does not exist or you do not have access to it."
    return GatewayError(
        404,
        f"{text} {why}".strip(),
        type_="invalid_request_error",
        code="model_not_found",
        param="model",
    )


def too_large(limit: int) -> GatewayError:
    return GatewayError(413, f"Request body over {limit} bytes.", type_="invalid_request_error")


def rate_limited(
    retry_after: float,
    what: str = "Rate limit reached for your tenant",
    code: str = "rate_limit_exceeded",
) -> GatewayError:
    """429 with Retry-After (whole seconds, at least 1)."""
    return GatewayError(
        429,
        f"{what}; retry in {retry_after:.2f}s.",
        type_="rate_limit_error",
        code=code,
        headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
    )


def unavailable(message: str) -> GatewayError:
    return GatewayError(503, message, type_="service_unavailable", code="engine_unavailable")


def install(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, GatewayError):  # only registered for GatewayError
            raise exc
        return exc.response()

    app.add_exception_handler(GatewayError, handle)
