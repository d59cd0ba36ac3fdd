"""Fault injection: the engine dies (SIGKILL) under a running gateway, then comes back.

A stack of its own (the session engine is shared by other tests): while the engine is down the
gateway answers 503 in OpenAI's error shape; once a new engine listens on the same port the
gateway serves again, without being restarted (its pooled connections to the dead engine are
retried on fresh ones).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import Adapters
from tests.serving.stack import CLI, Service, ServingStack, wait_engines_seen

PROMPT = "<|user|>\nWhere is my order 1234?<|end|>\n<|assistant|>\n"


@pytest.fixture
def stack(
    pg_admin_url: str, s3_endpoint: str, tiny_base: Path, adapters: Adapters
) -> Iterator[ServingStack]:
    own = ServingStack(pg_admin_url, s3_endpoint, tiny_base)
    try:
        own.create_adapter("acme", "orders")
        own.upload("acme", "orders", adapters.orders_v1)
        own.promote("acme", "orders", 1)
        yield own
    finally:
        own.close()


def _complete(gateway: httpx.Client, stack: ServingStack) -> httpx.Response:
    return gateway.post(
        "/v1/completions",
        json={"model": "orders", "prompt": PROMPT, "max_tokens": 4, "temperature": 0},
        headers=stack.tokens["acme"],
    )


def test_a_killed_engine_is_a_503_and_a_restarted_one_serves_again(stack: ServingStack) -> None:
    engine, gateway_service = stack.services
    gateway = httpx.Client(base_url=stack.gateway_url, trust_env=False, timeout=120)
    with gateway:
        for _ in range(3):  # a few pooled connections from the gateway to the engine
            assert _complete(gateway, stack).status_code == 200

        os.killpg(engine.proc.pid, signal.SIGKILL)
        engine.proc.wait(30)
        for _ in range(3):
            down = _complete(gateway, stack)
            assert down.status_code == 503, down.text
            error = down.json()["error"]
            assert set(error) >= {"message", "type", "code"}, error
            assert error["type"] == "service_unavailable", error
        assert gateway.get("/readyz").status_code == 503

        again = Service(
            "engine",
            [*CLI, "serve", "engine", "--base-model", "tiny"],
            stack.env,
            stack.live.home / "engine-restarted.log",
        )
        stack.services[0] = again  # stopped by stack.close()
        again.wait_http(f"{stack.engine_url}/health", 300)
        wait_engines_seen(stack.gateway_url, "1/1", 60)  # its next poll finds the engine back
        for _ in range(5):
            r = _complete(gateway, stack)
            assert r.status_code == 200, r.text
        assert gateway.get("/readyz").status_code == 200
    assert gateway_service.proc.poll() is None  # the same gateway process throughout
