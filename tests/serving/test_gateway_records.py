"""What the gateway records and refuses: usage, traffic samples, metrics, auth, rate limits,
and the resolver's bounded cache (session stack from conftest: sample rate 1.0)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from registry.models import TrafficSample, UsageRecord
from tests.services import free_port
from tests.serving import reference
from tests.serving.conftest import Adapters
from tests.serving.stack import Service, ServingStack

PROMPT = "<|user|>\nIs my parcel late?<|end|>\n<|assistant|>\n"


def _db(serving: ServingStack) -> Session:
    return Session(create_engine(serving.live.env["LORAPLEX_DATABASE_URL"]))


def _eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_usage_is_recorded_per_request_with_the_version_that_answered(
    serving: ServingStack,
) -> None:
    raw = serving.openai("acme").completions.with_raw_response.create(
        model="orders",
        prompt=PROMPT,
        max_tokens=8,
        temperature=0,
        extra_headers={"x-request-id": "req-usage-1"},
    )
    assert raw.headers["x-request-id"] == "req-usage-1"
    usage = raw.parse().usage
    with _db(serving) as s:
        row = _eventually(
            lambda: s.scalar(select(UsageRecord).where(UsageRecord.request_id == "req-usage-1"))
        )
        assert row is not None, "usage row not written within 5 s"
        assert (row.prompt_tokens, row.completion_tokens) == (
            usage.prompt_tokens,  # type: ignore[union-attr]
            usage.completion_tokens,  # type: ignore[union-attr]
        )
        assert row.model == "orders" and row.status_code == 200 and row.latency_ms > 0
        assert row.endpoint == "completions" and row.stream is False
        versions = serving.ok(
            serving.http.get(
                "/v1/tenants/acme/adapters/orders/versions/1", headers=serving.tokens["acme"]
            )
        )
        assert str(row.version_id) == versions["id"]
    lineage = serving.ok(
        serving.http.get(
            "/v1/tenants/acme/adapters/orders/versions/1/lineage", headers=serving.tokens["acme"]
        )
    )
    served = [n for n in lineage["nodes"] if n["type"] == "serving"]
    assert served and served[0]["attrs"]["requests"] >= 1


def test_prompts_are_sampled_to_the_traffic_log_unless_the_tenant_opts_out(
    serving: ServingStack,
) -> None:
    marker = f"sample-{time.time_ns()}"
    client = serving.openai("globex")
    client.chat.completions.create(
        model="support", messages=[{"role": "user", "content": marker}], max_tokens=2
    )

    def samples(text: str) -> list[TrafficSample]:
        with _db(serving) as s:
            rows = s.scalars(select(TrafficSample).where(TrafficSample.source == "gateway")).all()
            return [r for r in rows if text in str(r.record)]

    found = _eventually(lambda: samples(marker))
    assert found and found[0].record == {"messages": [{"role": "user", "content": marker}]}
    serving.ok(
        serving.http.put(
            "/v1/tenants/globex/traffic-logging",
            json={"enabled": False},
            headers=serving.tokens["globex"],
        )
    )
    try:
        time.sleep(1.2)  # the gateway's auth cache (1 s in this stack)
        quiet = f"quiet-{time.time_ns()}"
        client.chat.completions.create(
            model="support", messages=[{"role": "user", "content": quiet}], max_tokens=2
        )
        time.sleep(1.0)
        assert samples(quiet) == []
    finally:
        serving.http.put(
            "/v1/tenants/globex/traffic-logging",
            json={"enabled": True},
            headers=serving.tokens["globex"],
        )


def test_metrics_on_gateway_and_engine(serving: ServingStack) -> None:
    serving.openai("acme").completions.create(model="orders", prompt=PROMPT, max_tokens=4)
    assert httpx.get(f"{serving.gateway_url}/metrics", trust_env=False).status_code == 404
    gateway = httpx.get(f"{serving.gateway_metrics_url}/metrics", trust_env=False).text
    labels = {"tenant": "acme", "adapter": "orders", "version": "v1"}
    assert _metric(gateway, "loraplex_gateway_requests_total", **labels, status="200") >= 1
    assert _metric(gateway, "loraplex_gateway_tokens_total", **labels, kind="completion") >= 1
    assert _metric(gateway, "loraplex_gateway_request_seconds_count", **labels) >= 1
    assert _metric(gateway, "loraplex_gateway_overhead_seconds_count") >= 1
    engine = httpx.get(f"{serving.engine_url}/metrics", trust_env=False).text
    assert _metric(engine, "loraplex_resolver_cache_misses_total") >= 1
    assert _metric(engine, "loraplex_resolver_load_seconds_count") >= 1
    assert re.search(r"^loraplex_resolver_cache_bytes \d", engine, re.M)


def test_tokens_are_checked(serving: ServingStack) -> None:
    gw = httpx.Client(base_url=serving.gateway_url, trust_env=False, timeout=30)
    body = {"model": "orders", "prompt": "hi", "max_tokens": 1}
    r = gw.post("/v1/completions", json=body)
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = gw.post("/v1/completions", json=body, headers={"Authorization": "Bearer not-a-jwt"})
    assert r.status_code == 401
    r = gw.post("/v1/completions", json=body, headers=serving.ops)  # ops: no inference scope
    assert r.status_code == 403, r.text
    r = gw.post("/v1/completions", content=b"{nope", headers=serving.tokens["acme"])
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]


def test_rate_limit_answers_429_per_tenant(serving: ServingStack) -> None:
    port = free_port()
    env = {
        **serving.env,
        "LORAPLEX_GATEWAY_RATE_LIMIT_RPS": "0.2",
        "LORAPLEX_GATEWAY_RATE_LIMIT_BURST": "2",
        "LORAPLEX_GATEWAY_METRICS_PORT": str(free_port()),  # the stack's gateway holds its own
    }
    gw = Service(
        "gateway-limited",
        [
            *__import__("tests.serving.stack", fromlist=["CLI"]).CLI,
            "serve",
            "gateway",
            "--port",
            str(port),
        ],
        env,
        serving.live.home / "gateway-limited.log",
    )
    try:
        gw.wait_http(f"http://127.0.0.1:{port}/healthz", 60)
        url = f"http://127.0.0.1:{port}/v1/completions"
        body = {"model": "orders", "prompt": "hi", "max_tokens": 1}
        codes = [
            httpx.post(url, json=body, headers=serving.tokens["acme"], trust_env=False, timeout=60)
            for _ in range(3)
        ]
        assert [r.status_code for r in codes] == [200, 200, 429], codes[-1].text
        assert codes[-1].json()["error"]["code"] == "rate_limit_exceeded"
        assert int(codes[-1].headers["retry-after"]) >= 1
        # another tenant's bucket is its own
        other = httpx.post(
            url,
            json={**body, "model": "support"},
            headers=serving.tokens["globex"],
            trust_env=False,
            timeout=60,
        )
        assert other.status_code == 200
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1",
            api_key=serving.tokens["acme"]["Authorization"][7:],
            max_retries=0,
            http_client=httpx.Client(trust_env=False),
        )
        with pytest.raises(openai.RateLimitError):
            client.completions.create(model="orders", prompt="hi", max_tokens=1)
    finally:
        gw.stop()


def test_evicted_versions_are_fetched_again_and_still_exact(
    serving: ServingStack, adapters: Adapters, tiny_base: Path
) -> None:
    """The stack's resolver cache holds three adapters: touching four versions evicts one,
    which vLLM is told to forget; asking for it again fetches and verifies it anew."""
    engine = lambda: httpx.get(f"{serving.engine_url}/metrics", trust_env=False).text  # noqa: E731
    for model in ("orders@v1", "orders@v2"):
        serving.openai("acme").completions.create(model=model, prompt=PROMPT, max_tokens=2)
    serving.openai("globex").completions.create(model="support", prompt=PROMPT, max_tokens=2)
    spare = serving.upload("acme", "orders", adapters.spare)
    evictions = _metric(engine(), "loraplex_resolver_cache_evictions_total")
    text = (
        serving.openai("acme")
        .completions.create(
            model=f"orders@v{spare['version']}", prompt=PROMPT, max_tokens=12, temperature=0
        )
        .choices[0]
        .text
    )
    assert text == reference.greedy(tiny_base, adapters.spare, PROMPT, 12)
    assert _metric(engine(), "loraplex_resolver_cache_evictions_total") > evictions
    time.sleep(1.5)  # the stack's delete grace is 1 s
    for model, folder in (("orders@v1", adapters.orders_v1), ("orders@v2", adapters.orders_v2)):
        got = (
            serving.openai("acme")
            .completions.create(model=model, prompt=PROMPT, max_tokens=12, temperature=0)
            .choices[0]
            .text
        )
        assert got == reference.greedy(tiny_base, folder, PROMPT, 12), model
