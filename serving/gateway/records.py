"""What one inference request leaves behind once answered: metrics, its usage row (written in
batches by usage.py), a structured log line, and the sampled prompt or trace (capture.py)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import structlog

from serving.gateway import metrics
from serving.gateway.auth import Caller
from serving.gateway.capture import Sampled
from serving.gateway.proxy import Outcome
from serving.gateway.routing import Route
from serving.gateway.usage import Usage

log = structlog.get_logger("serving.gateway.app")  # the request log keeps its logger name


def record(
    state: Any,
    caller: Caller,
    route: Route,
    endpoint: str,
    requested: str,
    request_id: str,
    stream: bool,
    out: Outcome,
    t0: float,
    started_at: dt.datetime,
) -> None:
    seconds = time.perf_counter() - t0
    labels = (caller.tenant_slug, route.adapter, f"v{route.version}")
    metrics.REQUESTS.labels(*labels, endpoint, str(out.status)).inc()
    metrics.LATENCY.labels(*labels, endpoint).observe(seconds)
    if out.first_byte_s is not None:
        metrics.TTFB.labels(*labels).observe(out.first_byte_s)
    metrics.TOKENS.labels(*labels, "prompt").inc(out.prompt_tokens)
    metrics.TOKENS.labels(*labels, "completion").inc(out.completion_tokens)
    state.usage.record(
        Usage(
            tenant_id=caller.tenant_id,
            adapter_id=route.adapter_id,
            version_id=route.version_id,
            request_id=request_id[:64],
            client_id=caller.client_id,
            model=requested[:200],
            endpoint=endpoint,
            stream=stream,
            status_code=out.status,
            prompt_tokens=out.prompt_tokens,
            completion_tokens=out.completion_tokens,
            tool_calls=out.tool_calls,
            latency_ms=seconds * 1e3,
            started_at=started_at,
        )
    )
    log.info(
        "gateway.request",
        request_id=request_id,
        tenant=caller.tenant_slug,
        model=route.label,
        endpoint=endpoint,
        stream=stream,
        status=out.status,
        ms=round(seconds * 1e3, 2),
        prompt_tokens=out.prompt_tokens,
        completion_tokens=out.completion_tokens,
        tool_calls=out.tool_calls,
    )


def sampled_request(
    caller: Caller,
    route: Route,
    endpoint: str,
    request_id: str,
    body: dict[str, Any],
    out: Outcome,
    started_at: dt.datetime,
) -> Sampled:
    return Sampled(
        tenant_id=caller.tenant_id,
        tenant=caller.tenant_slug,
        adapter_id=route.adapter_id,
        adapter=route.adapter,
        version_id=route.version_id,
        version=route.version,
        request_id=request_id[:64],
        endpoint=endpoint,
        body=body,
        settings=route.capture,
        created_at=started_at,
        status=out.status,
        response=out.answer.response() if out.answer is not None else None,
        finish_reason=out.answer.finish_reason if out.answer is not None else None,
        usage={"prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens},
    )
