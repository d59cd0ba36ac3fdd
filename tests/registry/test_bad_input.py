"""Bad input answers 4xx with a message, never 500: integers beyond 64 bits, naive datetimes,
non-finite numbers and deeply nested or oversized free-form JSON, over each route family."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import World
from tests.registry.training.conftest import JobWorld

HUGE = 10**30
A = "/v1/tenants/acme/adapters/support"


def nested(depth: int) -> dict[str, Any]:
    """{"a": {"a": ... {}}} as raw JSON text would build it (no recursion here either)."""
    return json.loads('{"a": ' * depth + "{}" + "}" * depth)


def raw(body: dict[str, Any], **patch: str) -> bytes:
    """`body` as JSON text with the values of `patch` spliced in verbatim (NaN, 1e999...)."""
    text = json.dumps(body)
    for key, literal in patch.items():
        text = text.replace(f'"@{key}@"', literal)
    return text.encode()


@pytest.fixture
def jw(world: World, tmp_path: Path) -> JobWorld:
    return JobWorld(world, tmp_path / "tiny-base")


@pytest.fixture
def loose(jw: JobWorld) -> TestClient:
    """A client that gets a 500 as a response instead of the server's exception."""
    assert jw.upload().status_code == 201  # version 1 of acme/support
    app = jw.world.stack.app
    return TestClient(app, base_url="https://testserver", raise_server_exceptions=False)


# (who, method, path, JSON text); who: "ops" or "acme"
BODIES: dict[str, tuple[str, str, str, bytes]] = {
    "tenant quota_adapters over int32": (
        "ops", "POST", "/v1/tenants",
        raw({"slug": "big", "display_name": "B", "quota_adapters": 2**40}),
    ),
    "tenant quota bytes over int64": (
        "ops", "POST", "/v1/tenants",
        raw({"slug": "big", "display_name": "B", "quota_dataset_bytes": HUGE}),
    ),
    "tenant update quota over int64": (
        "ops", "PATCH", "/v1/tenants/acme", raw({"quota_dataset_bytes": HUGE}),
    ),
    "adapter max_steps over int64": (
        "acme", "POST", "/v1/tenants/acme/adapters",
        raw({"name": "b", "base_model": "tiny", "training": {"rank": 4, "max_steps": HUGE}}),
    ),
    "adapter seed over int64": (
        "acme", "POST", "/v1/tenants/acme/adapters",
        raw({"name": "b", "base_model": "tiny", "training": {"rank": 4, "seed": HUGE}}),
    ),
    "adapter alpha infinite": (
        "acme", "POST", "/v1/tenants/acme/adapters",
        raw({"name": "b", "base_model": "tiny", "training": {"alpha": "@x@"}}, x="1e999"),
    ),
    "job hyperparameters max_steps over int64": (
        "acme", "POST", "/v1/tenants/acme/training-jobs",
        raw({"adapter": "support", "dataset_ids": ["@d@"], "hyperparameters": {"max_steps": HUGE}}),
    ),
    "promotion policy margin infinite": (
        "acme", "PUT", f"{A}/promotion-policy", raw({"mode": "auto", "margin": "@x@"}, x="1e999"),
    ),
    "eval details NaN": (
        "acme", "POST", f"{A}/versions/1/evals",
        raw({"suite": "s", "metrics": {"m": 1}, "details": {"x": "@x@"}}, x="NaN"),
    ),
    "eval details Infinity": (
        "acme", "POST", f"{A}/versions/1/evals",
        raw({"suite": "s", "metrics": {"m": 1}, "details": {"x": ["@x@"]}}, x="-Infinity"),
    ),
    "eval details integer over int64": (
        "acme", "POST", f"{A}/versions/1/evals",
        raw({"suite": "s", "metrics": {"m": 1}, "details": {"x": HUGE}}),
    ),
    "eval details nested deep": (
        "acme", "POST", f"{A}/versions/1/evals",
        raw({"suite": "s", "metrics": {"m": 1}, "details": nested(900)}),
    ),
    "eval details over the size bound": (
        "acme", "POST", f"{A}/versions/1/evals",
        raw({"suite": "s", "metrics": {"m": 1}, "details": {"x": "y" * (900 << 10)}}),
    ),
    "drift metric sample_size over int64": (
        "acme", "POST", f"{A}/drift-metrics",
        raw({"metric": "m", "value": 1, "window_start": "2024-01-01T00:00:00Z",
             "window_end": "2024-01-02T00:00:00Z", "sample_size": HUGE}),
    ),
    "drift metric details NaN": (
        "acme", "POST", f"{A}/drift-metrics",
        raw({"metric": "m", "value": 1, "window_start": "2024-01-01T00:00:00Z",
             "window_end": "2024-01-02T00:00:00Z", "sample_size": 1, "details": {"x": "@x@"}},
            x="NaN"),
    ),
    "drift policy window over int64": (
        "ops", "PUT", f"{A}/drift-policy", raw({"window": HUGE}),
    ),
    "drift policy window infinite": (
        "ops", "PUT", f"{A}/drift-policy", raw({"window": "@x@"}, x="1e999"),
    ),
    "drift policy cooldown in days over int32": (
        "ops", "PUT", f"{A}/drift-policy", raw({"cooldown": "99999999999d"}),
    ),
    "traffic sample with NaN": (
        "acme", "POST", "/v1/tenants/acme/traffic",
        raw({"adapter": "support", "version": 1, "samples": [
            {"messages": [{"role": "user", "content": "hi", "x": "@x@"}]}]}, x="NaN"),
    ),
}


@pytest.mark.parametrize("case", list(BODIES))
def test_bad_bodies_are_4xx(jw: JobWorld, loose: TestClient, case: str) -> None:
    who, method, path, body = BODIES[case]
    body = body.replace(b'"@d@"', json.dumps(jw.dataset["id"]).encode())
    headers = (jw.world.ops if who == "ops" else jw.acme).headers
    resp = loose.request(
        method, path, content=body, headers={**headers, "Content-Type": "application/json"}
    )
    assert resp.status_code in (400, 413, 422), (case, resp.status_code, resp.text[:300])
    assert resp.json()["detail"], resp.text


# (who, path with query)
QUERIES: dict[str, tuple[str, str]] = {
    "tenant list offset": ("ops", f"/v1/tenants?offset={HUGE}"),
    "dataset list offset": ("acme", f"/v1/tenants/acme/datasets?offset={HUGE}"),
    "drift series naive since": ("acme", f"{A}/drift-metrics?since=2024-01-01T00:00:00"),
    "drift series naive until": ("acme", f"{A}/drift-metrics?until=2024-01-01T00:00:00"),
    "audit events naive since": ("ops", "/v1/audit/events?since=2024-01-01T00:00:00"),
    "audit events naive until": ("ops", "/v1/audit/events?until=2024-01-01T00:00:00"),
    "audit events huge cursor": ("ops", f"/v1/audit/events?after_seq={HUGE}"),
}


@pytest.mark.parametrize("case", list(QUERIES))
def test_bad_queries_are_4xx(jw: JobWorld, loose: TestClient, case: str) -> None:
    who, path = QUERIES[case]
    headers = (jw.world.ops if who == "ops" else jw.acme).headers
    resp = loose.get(path, headers=headers)
    assert resp.status_code in (400, 422), (case, resp.status_code, resp.text[:300])
    assert resp.json()["detail"], resp.text
