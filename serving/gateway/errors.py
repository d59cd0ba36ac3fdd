"""Errors in OpenAI's shape, so the official clients raise their usual exception types."""

from __future__ import annotations

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
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        body = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return JSONResponse({"error": body}, status_code=self.status, headers=headers)


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


def rate_limited(retry_after: float) -> GatewayError:
    return GatewayError(
        429,
        f"Rate limit reached for your tenant; retry in {retry_after:.2f}s.",
        type_="rate_limit_error",
        code="rate_limit_exceeded",
    )


def unavailable(message: str) -> GatewayError:
    return GatewayError(503, message, type_="service_unavailable", code="engine_unavailable")


def install(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, GatewayError):  # only registered for GatewayError
            raise exc
        headers = {}
        if exc.status == 429:
            headers["Retry-After"] = "1"
        return exc.response(headers)

    app.add_exception_handler(GatewayError, handle)
