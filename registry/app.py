"""The registry's FastAPI application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from registry.adapters.endpoints import router as adapters_router
from registry.aliases.endpoints import router as aliases_router
from registry.audit.endpoints import router as audit_router
from registry.audit.service import audit
from registry.auth.cache import PrincipalCache
from registry.auth.endpoints import router as auth_router
from registry.auth.keys import load_audit_key, load_signing_keys
from registry.auth.server import TokenServer
from registry.auth.tokens import TokenVerifier
from registry.base_models.endpoints import router as base_models_router
from registry.bodylimit import BodyLimitMiddleware
from registry.console import render as console_render
from registry.console.router import router as console_router
from registry.datasets.endpoints import router as datasets_router
from registry.datasets.platform import router as platform_datasets_router
from registry.db import make_engine, make_sessionmaker
from registry.drift.endpoints import router as drift_router
from registry.errors import ERROR_RESPONSES, install_error_handlers
from registry.evals.endpoints import router as evals_router
from registry.health.endpoints import router as health_router
from registry.labelling.endpoints import router as labelling_router
from registry.lineage.endpoints import router as lineage_router
from registry.logging import RequestLogMiddleware
from registry.schedules.endpoints import router as schedules_router
from registry.settings import Settings
from registry.splits.endpoints import router as splits_router
from registry.storage import open_configured_store
from registry.suites.endpoints import router as suites_router
from registry.suites.pin_endpoints import router as suite_pins_router
from registry.tasks import InProcessWork, TaskQueue
from registry.teachers.endpoints import router as teachers_router
from registry.tenants.endpoints import router as tenants_router
from registry.traffic.capture_endpoints import router as traffic_router
from registry.traffic.curation_endpoints import router as curation_router
from registry.traffic.feedback_endpoints import router as feedback_router
from registry.training import backlog_metrics
from registry.training.backlog_endpoints import router as backlog_router
from registry.training.endpoints import router as training_router


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The embedded default has no beat: its in-process queue runs the periodic tasks."""
    tasks = app.state.tasks
    if isinstance(tasks, InProcessWork):
        tasks.start()
    yield
    if isinstance(tasks, InProcessWork):
        tasks.close()


def create_app(
    settings: Settings, *, queue: TaskQueue, engine_kwargs: dict | None = None
) -> FastAPI:
    """The registry app; `queue` is where it sends work (built by the composition root, `cli/`)."""
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("uvicorn.access").disabled = True  # RequestLogMiddleware logs requests

    app = FastAPI(
        title="loraplex registry",
        version="0.1.0",
        description="Multi-tenant LoRA adapter registry: the system of record.",
        lifespan=_lifespan,
    )
    engine = make_engine(settings.resolved_database_url, **(engine_kwargs or {}))
    keys = load_signing_keys(settings)
    audit.use_key(load_audit_key(settings))  # the process's audit HMAC key (see AuditService)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.store = open_configured_store(settings)
    app.state.signing_keys = keys
    app.state.tasks = queue
    app.state.token_server = TokenServer(
        keys.private,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl=settings.token_ttl_seconds,
    )
    app.state.verifier = TokenVerifier(
        keys.public, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    app.state.principals = PrincipalCache(settings.auth_cache_seconds)  # freshness: its docstring

    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, settings=settings)
    app.add_middleware(RequestLogMiddleware)
    for router in (
        health_router,
        auth_router,
        tenants_router,
        curation_router,  # before datasets_router: /datasets/from-traffic is not a dataset id
        datasets_router,
        platform_datasets_router,
        suites_router,
        suite_pins_router,
        base_models_router,
        adapters_router,
        aliases_router,
        splits_router,
        evals_router,
        lineage_router,
        training_router,
        backlog_router,
        schedules_router,
        drift_router,
        traffic_router,
        feedback_router,
        teachers_router,
        labelling_router,
        audit_router,
    ):
        app.include_router(router, responses=ERROR_RESPONSES)
    app.include_router(console_router)  # HTML pages at /console (not in the OpenAPI document)
    console_render.install(app)
    backlog_metrics.install(app)  # the training backlog gauges on /metrics
    return app
