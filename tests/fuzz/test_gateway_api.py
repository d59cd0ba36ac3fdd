"""Schemathesis over the gateway's OpenAPI, in process, with a tenant token, on PostgreSQL.

The point is the gateway's own input handling (auth, body limit, JSON, model forms and lookup,
generation limits, budget, forwarding, errors), so the engine is a fake at the HTTP boundary
(an httpx MockTransport in the gateway's engine client) that answers as vLLM does: 400 for a
body outside OpenAI's shape (the shape the gateway declares), else 200 JSON with usage or an
SSE stream. The real engine is covered by tests/serving. The gateway reads the world through
the test's rolled-back transaction (its session factory swapped), like tests/serving's gateway
hardening tests. Checks: no 5xx but the declared 503s, declared statuses, schema and content
type conformance, negative data refused, auth not ignored, < 3 s per request; usage and
sampled prompts of answered requests are written.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import schemathesis
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import SecretStr
from sqlalchemy import func, select

from registry.models import TrafficSample, UsageRecord
from registry.settings import Settings
from serving.gateway.app import create_gateway, use_sessions
from serving.gateway.usage import Usage
from tests.conftest import World
from tests.fuzz.harness import fuzz
from tests.serving.fake_engine import attach, stop_all

MAX_EXAMPLES = 100  # per operation and generation mode
FINE_TUNING_EXAMPLES = 15
USAGE = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
COMPLETION = {"id": "c", "object": "chat.completion", "choices": [], "usage": USAGE}
MODELS = ["support", "support@production", "support@v1", "support@1"]


def engine(app: FastAPI) -> FastAPI:
    """vLLM's answers at the boundary: 400 for a body outside the declared shape, else 200."""
    paths = app.openapi()["paths"]
    schemas = {
        path: paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        for path in ("/v1/chat/completions", "/v1/completions")
    }
    fake = FastAPI()

    @fake.get("/health")
    async def health() -> Response:
        return Response()

    @fake.post("/v1/chat/completions")
    @fake.post("/v1/completions")
    async def answer(request: Request) -> Response:
        body = orjson.loads(await request.body())
        try:
            jsonschema.validate(body, schemas[request.url.path])
        except jsonschema.ValidationError as exc:
            error = {"object": "error", "message": exc.message, "type": "BadRequestError"}
            return JSONResponse({**error, "code": 400}, status_code=400)
        if not body.get("stream"):
            return JSONResponse(COMPLETION)
        events: list[dict[str, Any]] = [
            {"id": "c", "choices": [{"index": 0, "delta": {"content": "hi"}}]}
        ]
        events.append({"id": "c", "choices": [], "usage": USAGE})
        sse = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)
        chunks = _chunks(sse + b"data: [DONE]\n\n")
        return StreamingResponse(chunks, media_type="text/event-stream")

    return fake


async def _chunks(data: bytes, size: int = 50) -> AsyncIterator[bytes]:
    """A body that streams in pieces, as from an engine."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.fixture
def gateway(world: World, known: dict[str, str], tmp_path: Path) -> Iterator[FastAPI]:
    registry = world.stack.app
    settings = Settings(
        home=tmp_path / "gw-home",
        database_url=registry.state.settings.resolved_database_url,
        jwt_private_key_file=registry.state.settings.resolved_jwt_key_file,
        engine_url="http://engine",
        engine_api_key=SecretStr("k"),
        usage_flush_seconds=3600,
        traffic_sample_rate=1.0,  # every prompt sampled: their storage is checked too
        gateway_rate_limit_rps=1000.0,  # limits are tested in tests/serving; here: input
        gateway_rate_limit_burst=10_000,
        gateway_auth_failure_burst=10_000,
        gateway_tokens_per_minute=10**9,
    )
    app = create_gateway(settings)
    sessions = registry.state.sessionmaker  # the test's rolled-back transaction
    use_sessions(app, sessions)
    attach(app, engine(app))
    yield app
    stop_all()
    app.state.db.dispose()


def test_gateway_api(world: World, gateway: FastAPI) -> None:
    headers = world.acme.headers  # type: ignore[attr-defined]
    usage = gateway.state.usage
    recorded: list[Usage] = []
    keep = usage.record

    def record(u: Usage) -> None:  # count what requests recorded
        recorded.append(u)
        keep(u)

    usage.record = record  # type: ignore[method-assign]
    before = _stored(gateway)
    schema = schemathesis.openapi.from_asgi("/openapi.json", gateway)
    # inference and feedback in depth; the fine-tuning, files and models routes (registry
    # services, fuzzed in depth by the registry's own fuzz test) more lightly
    hot = "^/v1/(chat/completions|completions|feedback)$"
    run = fuzz(
        schema.include(path_regex=hot),
        headers=headers,
        known={},
        max_examples=MAX_EXAMPLES,
        body_values={"model": MODELS},
    )
    print(f"gateway as tenant: {run.summary()}")
    assert not run.failures, "\n\n".join(run.failures)
    assert run.statuses.get(200, 0) > 20, run.summary()  # cases reached the engine
    light = fuzz(
        schema.exclude(path_regex=hot),
        headers=headers,
        known={},
        max_examples=FINE_TUNING_EXAMPLES,
        body_values={"model": MODELS},
    )
    print(f"gateway fine-tuning routes as tenant: {light.summary()}")
    assert not light.failures, "\n\n".join(light.failures)
    # Feedback on an unknown request id flushes the buffer on the way, so count what landed.
    asyncio.run(usage.flush())
    assert usage._usage == [] and usage._samples == [], "usage or samples could not be stored"
    stored, sampled = (a - b for a, b in zip(_stored(gateway), before, strict=True))
    assert recorded and stored == len(recorded), (stored, len(recorded))
    assert sampled > 0, "no sampled prompt was stored"


def _stored(gateway: FastAPI) -> tuple[int, int]:
    with gateway.state.sessions() as session:
        usage = session.scalar(select(func.count()).select_from(UsageRecord)) or 0
        samples = session.scalar(select(func.count()).select_from(TrafficSample)) or 0
    return usage, samples


def test_the_inference_routes_declare_openai_bodies_with_this_deployments_limits(
    gateway: FastAPI,
) -> None:
    """They read the raw request, so FastAPI declared no body and fuzzing sent none."""
    paths = gateway.openapi()["paths"]
    settings = gateway.state.settings
    for path, required in (
        ("/v1/chat/completions", ["model", "messages"]),
        ("/v1/completions", ["model", "prompt"]),
    ):
        op = paths[path]["post"]
        body = op["requestBody"]["content"]["application/json"]["schema"]
        assert body["required"] == required
        limit = body["properties"]["max_tokens"]["anyOf"][0]["maximum"]
        assert limit == settings.gateway_max_tokens
        assert {"200", "400", "401", "404", "413", "429", "503"} <= set(op["responses"])
        assert "text/event-stream" in op["responses"]["200"]["content"]
        assert op["security"] == [{"bearer": []}]
