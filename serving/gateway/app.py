"""The tenant gateway: OpenAI-compatible, in front of the vLLM engine.

Per request: verify the tenant token (cached), take a token from the tenant's bucket, read the
body up to its limit, map `model` to an immutable version (cached < 1 s), check the generation
size, reserve its completion tokens from the tenant's token budget, rewrite `model` to the
version's engine name, forward, and record usage and (sampled, per the adapter's capture
settings) the prompt or the whole trace (capture.py; redacted at flush). Once the engine
answers, the budget is settled with the usage it reports (prompt + completion tokens): a request
may leave its tenant in debt, which later requests wait out. Everything after the engine answers
is off the request path. /metrics is on an internal port only (metrics.py).

The gateway is the tenant's one base URL: it also serves OpenAI's files, fine-tuning jobs and
models routes (`registry.finetuning.endpoints`, the registry's services on the same database,
object store and task queue), each request taking one token from the tenant's request bucket.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
import structlog
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry.auth.cache import PrincipalCache
from registry.auth.keys import load_audit_key, load_signing_keys
from registry.auth.tokens import TokenVerifier
from registry.db import make_engine, make_sessionmaker
from registry.dependencies import CurrentPrincipal
from registry.finetuning import errors as openai_errors
from registry.finetuning.endpoints import router as openai_router
from registry.finetuning.errors import error_body
from registry.settings import Settings
from registry.storage import open_configured_store
from registry.tasks import CeleryQueue, TaskQueue
from serving.engine import engine_api_key
from serving.gateway import errors, feedback, metrics, openapi
from serving.gateway.answers import Answer
from serving.gateway.auth import Caller, GatewayAuth
from serving.gateway.canary import Splits
from serving.gateway.engines import EnginePool
from serving.gateway.limits import GenerationLimits
from serving.gateway.notify import RouteListener
from serving.gateway.proxy import Outcome
from serving.gateway.ratelimit import RateLimiter
from serving.gateway.ratelimit_redis import tenant_buckets
from serving.gateway.records import record, sampled_request
from serving.gateway.routing import Route, Router
from serving.gateway.usage import UsageWriter

log = structlog.get_logger(__name__)
ENDPOINTS = {"chat.completions": "/v1/chat/completions", "completions": "/v1/completions"}


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    port = settings.gateway_metrics_port
    server = metrics.serve(settings.gateway_metrics_host, port) if port else None
    app.state.usage.start()
    app.state.route_listener.start()
    await app.state.engine_client.start()
    try:
        yield
    finally:
        app.state.route_listener.stop()
        if server is not None:
            server[0].shutdown()
            server[0].server_close()
    await app.state.usage.stop()
    await app.state.engine_client.close()
    for buckets in (app.state.budget, app.state.limiter):
        await buckets.close()
    app.state.db.dispose()


class UnsentQueue:
    """The embedded default's gateway queue (no broker; the registry process owns the
    in-process workers): nothing is sent from here. A job created or resumed through the
    gateway stays queued until the registry's reaper re-sends queued jobs nobody claimed
    (`job_resend_seconds`; `loraplex up` shortens it)."""

    def send(self, name: str, args: Sequence[Any] = (), *, countdown: float = 0) -> None:
        log.info("task.left_for_reaper", task=name, args=[str(a) for a in args])


def default_queue(settings: Settings) -> TaskQueue:
    return CeleryQueue(settings) if settings.broker_url else UnsentQueue()


def use_sessions(app: FastAPI, sessions: sessionmaker[Session]) -> None:
    """Point every part of the gateway at `sessions` (tests: their rolled-back transaction)."""
    app.state.sessions = app.state.sessionmaker = sessions
    app.state.auth.sessions = app.state.router.sessions = app.state.usage.sessions = sessions
    app.state.splits.sessions = sessions


def create_gateway(settings: Settings, *, queue: TaskQueue | None = None) -> FastAPI:
    """`queue`: where the fine-tuning routes send work (the composition root's; default: Celery
    with a broker, else `UnsentQueue`)."""
    app = FastAPI(title="loraplex gateway", version="0.1.0", lifespan=_lifespan)
    db = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(db)
    keys = load_signing_keys(settings)
    load_audit_key(settings)  # the fine-tuning routes write audit events: refuse to start without
    verifier = TokenVerifier(
        keys.public, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    store = open_configured_store(settings)
    app.state.settings = settings
    app.state.db = db
    # `sessions` for the gateway's own code; `sessionmaker`, `verifier`, `store` and `tasks`
    # are what the registry's routes read (registry.dependencies, registry.finetuning).
    app.state.sessions = app.state.sessionmaker = sessions
    app.state.verifier = verifier
    # what registry.dependencies reads (as the registry's create_app sets it)
    app.state.principals = PrincipalCache(settings.auth_cache_seconds)
    app.state.store = store
    app.state.tasks = queue if queue is not None else default_queue(settings)
    failures = RateLimiter(settings.gateway_auth_failure_rps, settings.gateway_auth_failure_burst)
    app.state.auth = GatewayAuth(
        verifier, sessions, settings.gateway_auth_cache_seconds, failures=failures
    )
    app.state.router = Router(
        sessions, settings.gateway_resolve_ttl_seconds, settings.traffic_sample_rate
    )
    app.state.splits = Splits(sessions, settings.gateway_resolve_ttl_seconds)
    app.state.route_listener = RouteListener(settings, _on_route_change(app))
    # per tenant; shared by every replica through Redis when configured (ratelimit_redis.py)
    app.state.limiter, app.state.budget = tenant_buckets(settings)
    app.state.limits = GenerationLimits.from_settings(settings)
    app.state.usage = UsageWriter(sessions, flush_seconds=settings.usage_flush_seconds, store=store)
    app.state.engine_client = EnginePool(settings, engine_api_key(settings))  # engines.py
    errors.install(app)
    openai_errors.install(app)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    _routes(app, settings)
    app.include_router(
        openai_router,
        dependencies=[Depends(_rate_limit)],
        responses=openapi.error_responses(openapi.OPENAI_ERRORS),
    )
    openapi.install(app)
    return app


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (an unparseable body, an unknown path or method) in OpenAI's
    shape too, like every other answer of the gateway."""
    if not isinstance(exc, StarletteHTTPException):  # only registered for it
        raise exc
    body = error_body(exc.status_code, str(exc.detail))
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _rate_limit(request: Request, principal: CurrentPrincipal) -> None:
    """One token from the tenant's request bucket (the one inference requests take from) per
    files / fine-tuning / models request, once its token is verified. Async: the buckets are
    only touched from the event loop's thread."""
    key = str(principal.tenant_id or principal.subject)
    wait = await request.app.state.limiter.take(key)
    if wait > 0:
        metrics.REJECTED.labels("rate_limit").inc()
        raise errors.rate_limited(wait)


def _on_route_change(app: FastAPI) -> Callable[[uuid.UUID | None], None]:
    """A pushed change (alias move, version status, split): cached routes and splits of that
    tenant (None: every tenant) are dropped at once; the TTL stays as the fallback."""

    def changed(tenant_id: uuid.UUID | None) -> None:
        app.state.router.invalidate(tenant_id)
        app.state.splits.invalidate(tenant_id)

    return changed


def _routes(app: FastAPI, settings: Settings) -> None:
    # Bodies and answers are declared for the OpenAPI document only (openapi.py): the raw body
    # is read under its limit and forwarded as it is.
    @app.post("/v1/chat/completions", **openapi.inference(openapi.chat_request(settings)))
    async def chat_completions(request: Request) -> Response:
        return await _infer(request, "chat.completions")

    @app.post("/v1/completions", **openapi.inference(openapi.completion_request(settings)))
    async def completions(request: Request) -> Response:
        return await _infer(request, "completions")

    @app.post("/v1/feedback", **feedback.ROUTE)
    async def post_feedback(request: Request) -> JSONResponse:
        """Rate or correct one response by its `x-request-id` (serving/gateway/feedback.py)."""
        return await feedback.post_feedback(request)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", **openapi.READY)
    async def readyz(request: Request) -> JSONResponse:
        """Which dependency is down, as booleans: no exception text leaves the gateway."""
        checks = {"database": await run_in_threadpool(_db_ok, request.app)}
        healthy, known = await request.app.state.engine_client.ready()
        checks["engine"] = healthy > 0  # ready with at least one engine up
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks},
            status_code=200 if ok else 503,
            headers={"x-loraplex-engines": f"{healthy}/{known}"},  # healthy/known
        )


async def _caller(request: Request) -> Caller:
    try:
        address = request.client.host if request.client else ""
        return await request.app.state.auth.caller(request.headers.get("authorization"), address)
    except errors.GatewayError as exc:
        metrics.REJECTED.labels("auth_rate_limit" if exc.status == 429 else "auth").inc()
        raise exc


async def _body(request: Request, limit: int) -> dict[str, Any]:
    """The JSON object sent; 413 as soon as more than `limit` bytes arrived (chunked or not)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise errors.too_large(limit)
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise errors.too_large(limit)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.bad_request(f"Request body is not valid JSON: {exc}.") from exc
    if not isinstance(body, dict):
        raise errors.bad_request("Request body must be a JSON object.")
    return body


async def _infer(request: Request, endpoint: str) -> Response:
    t0 = time.perf_counter()
    started_at = dt.datetime.now(dt.UTC)
    state = request.app.state
    caller = await _caller(request)
    tenant = str(caller.tenant_id)
    wait = await state.limiter.take(tenant)
    if wait > 0:
        metrics.REJECTED.labels("rate_limit").inc()
        return errors.rate_limited(wait).response()
    try:
        body = await _body(request, state.settings.gateway_max_body_bytes)
        route: Route = await state.router.route(caller.tenant_id, body.get("model"))
        route = await state.splits.apply(route, body, request.headers, caller.client_id)
        reserved = min(state.limits.apply(endpoint, body), state.budget.burst)
    except errors.GatewayError:
        metrics.REJECTED.labels("request").inc()
        raise
    wait = await state.budget.take(tenant, reserved)
    if wait > 0:
        metrics.REJECTED.labels("token_budget").inc()
        what = "Token budget per minute reached for your tenant"
        return errors.rate_limited(wait, what, "tokens_exceeded").response()
    requested = body["model"]
    body["model"] = route.engine_name
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    headers = {"x-request-id": request_id, "x-loraplex-model": route.label}
    out = Outcome()
    sampled = caller.traffic_logging and state.usage.sample(route.capture.rate)
    if sampled:
        metrics.SAMPLED.labels(caller.tenant_slug).inc()
        if route.capture.full:
            out.answer = Answer(chat=endpoint == "chat.completions")
    stream = bool(body.get("stream"))

    def done() -> None:
        state.budget.settle(tenant, reserved - out.prompt_tokens - out.completion_tokens)
        record(state, caller, route, endpoint, requested, request_id, stream, out, t0, started_at)
        if sampled:
            state.usage.capture(
                sampled_request(caller, route, endpoint, request_id, body, out, started_at)
            )

    metrics.OVERHEAD.observe(time.perf_counter() - t0)
    client: EnginePool = state.engine_client
    path = ENDPOINTS[endpoint]
    try:
        if stream:
            r = await client.open_stream(path, body, request_id, out, route)
            if out.status == 200:
                headers["x-loraplex-engine"] = out.engine
                return StreamingResponse(
                    client.relay(r, out, done), media_type="text/event-stream", headers=headers
                )
            content = out.extra["content"]
        else:
            _, content = await client.complete(path, body, request_id, out, route)
    except Exception as exc:  # engine unreachable or timed out; no engine up (a 503 already)
        out.status = 503
        done()
        log.warning("gateway.engine_error", request_id=request_id, error=str(exc))
        if isinstance(exc, errors.GatewayError):
            raise
        raise errors.unavailable("The inference engine is unavailable; retry shortly.") from exc
    headers["x-loraplex-engine"] = out.engine
    done()
    if out.status == 200:
        return Response(content, media_type="application/json", headers=headers)
    return _engine_error(out, route, headers)


def _engine_error(out: Outcome, route: Route, headers: dict[str, str]) -> Response:
    message = (out.engine_error or "engine error").replace(route.engine_name, route.label)
    if out.status >= 500:
        log.error("gateway.engine_refused", model=route.label, status=out.status, error=message)
        exc = errors.unavailable(f"{route.label} could not be served: {message}")
        return exc.response(headers)
    exc = errors.GatewayError(out.status, message, type_="invalid_request_error")
    return exc.response(headers)


def _db_ok(app: FastAPI) -> bool:
    try:
        with app.state.sessions() as session:
            session.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
