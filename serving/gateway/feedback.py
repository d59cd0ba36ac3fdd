"""`POST /v1/feedback`: a tenant's rating or correction of one response, by request id."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse


async def post_feedback(request: Request) -> JSONResponse:
    raise NotImplementedError
