"""`POST /v1/feedback`: a tenant's rating or correction of one response, by request id.

The same body and checks as the registry's `POST /v1/tenants/{tenant}/feedback`, with the
gateway's token (the `inference` scope) and the tenant's request rate limit. Usage rows are
written in batches, so feedback sent right after its response may find no request yet: then this
gateway's usage buffer is flushed and the lookup retried once before the answer is 404. Another
tenant's request id is answered exactly like an unknown one. Errors are OpenAI-shaped.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from fastapi import Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from registry.errors import LoraplexError, NotFound, outage
from registry.traffic.feedback import feedback as feedback_service
from registry.traffic.feedback_schemas import FeedbackOut, FeedbackPost
from serving.gateway import errors, metrics, openapi
from serving.gateway.auth import Caller

log = structlog.get_logger(__name__)
MAX_BODY_BYTES = 128 * 1024  # a 64 KiB correction, escaped, with room for the rest
IN_FLIGHT_WAIT_S = 0.3  # a batch the background writer was already writing
FIELDS = "request_id, rating, correction, comment"

BODY = FeedbackPost.model_json_schema()  # as the registry declares it
_ERRORS = {
    400: "Bad body: not JSON, a field missing or invalid (`param` names it)",
    401: "Missing, invalid or expired token",
    403: "Not a tenant's token, or no 'inference' scope",
    404: "No request with this id of your tenant (code 'request_not_found')",
    413: f"Body over {MAX_BODY_BYTES} bytes",
    429: "Rate limit reached (Retry-After)",
    503: "The database is unavailable",
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# Route keywords for `@app.post("/v1/feedback", **feedback.ROUTE)` (the body is read raw).
ROUTE: dict[str, Any] = {
    "responses": {
        201: _json(FeedbackOut.model_json_schema(), "Feedback taken"),
        200: _json(FeedbackOut.model_json_schema(), "Feedback taken; it replaced earlier"),
    }
    | {code: _json(openapi.ERROR, text) for code, text in _ERRORS.items()},
    "openapi_extra": {
        "security": openapi.BEARER,
        "requestBody": {"required": True, "content": {"application/json": {"schema": BODY}}},
    },
}

TAKEN = Counter(
    "loraplex_gateway_feedback_total", "Feedback taken, by rating", ["tenant", "rating"]
)


async def post_feedback(request: Request) -> JSONResponse:
    from serving.gateway.app import _body, _caller  # app.py imports this module

    state = request.app.state
    caller = await _caller(request)
    wait = await state.limiter.take(str(caller.tenant_id))
    if wait > 0:
        metrics.REJECTED.labels("rate_limit").inc()
        return errors.rate_limited(wait).response()
    try:
        body = await _body(request, MAX_BODY_BYTES)
        post = _parse(body)
    except errors.GatewayError:
        metrics.REJECTED.labels("request").inc()
        raise
    out = await _record(state, caller, post)
    TAKEN.labels(caller.tenant_slug, str(out.rating)).inc()
    return JSONResponse(out.model_dump(mode="json"), status_code=200 if out.replaced else 201)


def _parse(body: dict[str, Any]) -> FeedbackPost:
    try:
        return FeedbackPost.model_validate(body)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        param = ".".join(str(p) for p in err["loc"]) or None
        if err["type"] == "missing":
            message = f"'{param}' is required; send {FIELDS}."
        elif err["type"] == "extra_forbidden":
            message = f"Unknown field '{param}'; send {FIELDS}."
        else:
            message = f"{param}: {err['msg']}" if param else str(err["msg"])
        raise errors.bad_request(message, param=param) from None


async def _record(state: Any, caller: Caller, post: FeedbackPost) -> FeedbackOut:
    try:
        return await _attempt(state.sessions, caller, post)
    except NotFound:
        pass
    written = await state.usage.flush()  # the response may still be in this gateway's buffer
    if not written:
        await asyncio.sleep(IN_FLIGHT_WAIT_S)
    try:
        return await _attempt(state.sessions, caller, post)
    except NotFound as exc:
        raise errors.GatewayError(
            404,
            exc.detail[:1].upper() + exc.detail[1:] + ".",
            type_="invalid_request_error",
            code="request_not_found",
            param="request_id",
        ) from None


async def _attempt(
    sessions: sessionmaker[Session], caller: Caller, post: FeedbackPost
) -> FeedbackOut:
    try:
        return await run_in_threadpool(_write, sessions, caller, post)
    except NotFound:
        raise
    except LoraplexError as exc:  # the correction does not fit the request
        message = exc.detail[:1].upper() + exc.detail[1:] + "."
        raise errors.bad_request(message, "correction") from None
    except Exception as exc:
        dependency = outage(exc)
        if dependency is None:
            raise
        log.warning("gateway.feedback_unavailable", dependency=dependency, error=str(exc))
        raise errors.GatewayError(
            503,
            f"The {dependency} is unavailable; retry shortly.",
            type_="service_unavailable",
            code="database_unavailable",
        ) from exc


def _write(sessions: sessionmaker[Session], caller: Caller, post: FeedbackPost) -> FeedbackOut:
    with sessions.begin() as session:
        return feedback_service.record(
            session,
            actor_subject=caller.client_id,
            tenant_id=caller.tenant_id,
            request_id=post.request_id,
            data=post,
        )
