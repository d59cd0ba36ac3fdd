from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

router = APIRouter(tags=["health"])
log = structlog.get_logger(__name__)


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """Prometheus text format (scraped inside the cluster; no tenant data in it)."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _down(dependency: str, exc: Exception) -> str:
    # The cause goes to the log only: exception text can name hosts, buckets or credentials.
    log.warning("readyz.dependency_down", dependency=dependency, error=type(exc).__name__)
    return "unavailable"


def _check(request: Request) -> dict[str, Any]:
    """Each dependency: "ok" or "unavailable" (the log line says why)."""
    checks: dict[str, Any] = {}
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks["database"] = _down("database", exc)
    try:
        request.app.state.store.ping()
        checks["object_store"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["object_store"] = _down("object_store", exc)
    return checks


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    checks = await run_in_threadpool(_check, request)
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)
