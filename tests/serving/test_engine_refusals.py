"""A refused version is a clean error, and it harms no one else's next request.

Session fixture `serving` (conftest). Here globex/support gets a second version whose weights are
altered in the object store after upload: the resolver refuses it (digest mismatch). The engine
must answer that with a 503 naming the reason and keep the connection open; the gateway must
answer a 503 naming the version in OpenAI's error shape; the requests that follow, for other
versions of both tenants, some of them concurrent, must all succeed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.serving.conftest import Adapters
from tests.serving.stack import ServingStack

PROMPT = "<|user|>\nWhere is my order 1234?<|end|>\n<|assistant|>\n"


def _tampered_version(serving: ServingStack, adapters: Adapters) -> dict[str, Any]:
    version = serving.upload("globex", "support", adapters.spare)
    key = f"{serving.prefix}/{version['artifact_prefix']}/adapter_model.safetensors"
    stored = serving.s3.get_object(Bucket="loraplex-live", Key=key)["Body"].read()
    serving.s3.put_object(Bucket="loraplex-live", Key=key, Body=stored[:-64] + bytes(64))
    return version


def _gateway_post(
    client: httpx.Client, serving: ServingStack, tenant: str, model: str
) -> httpx.Response:
    return client.post(
        "/v1/completions",
        json={"model": model, "prompt": PROMPT, "max_tokens": 4, "temperature": 0},
        headers=serving.tokens[tenant],
    )


def test_a_refused_version_is_a_503_and_the_next_requests_succeed(
    serving: ServingStack, adapters: Adapters
) -> None:
    version = _tampered_version(serving, adapters)
    label = f"support@v{version['version']}"

    # The engine itself: a clean 503 on a connection that stays open for the next request.
    engine = httpx.Client(
        base_url=serving.engine_url,
        headers={"Authorization": f"Bearer {serving.engine_key}"},
        trust_env=False,
        timeout=120,
    )
    with engine:
        body = {"prompt": PROMPT, "max_tokens": 4, "temperature": 0}
        refused = engine.post(
            "/v1/completions", json={**body, "model": "lpx-" + version["id"].replace("-", "")}
        )
        assert refused.status_code == 503, refused.text
        assert "sha256" in refused.json()["error"]["message"]
        assert refused.headers.get("connection", "").lower() != "close"
        healthy = engine.post("/v1/completions", json={**body, "model": "tiny"})
        assert healthy.status_code == 200, healthy.text

    # Through the gateway: the documented 503 naming the version, then everyone else is served.
    models = [("acme", "orders"), ("acme", "orders@v2"), ("globex", "support")]
    gateway = httpx.Client(base_url=serving.gateway_url, trust_env=False, timeout=120)
    with gateway:
        for _round in range(4):
            r = _gateway_post(gateway, serving, "globex", label)
            assert r.status_code == 503, r.text
            error = r.json()["error"]
            assert label in error["message"] and "sha256" in error["message"], error
            assert error["type"] == "service_unavailable" and error["code"], error
            # right after the refusal, on the same pooled connections: sequential...
            for tenant, model in models:
                r = _gateway_post(gateway, serving, tenant, model)
                assert r.status_code == 200, (tenant, model, r.text)
            # ...and concurrent
            with ThreadPoolExecutor(6) as pool:
                answers = list(
                    pool.map(lambda tm: _gateway_post(gateway, serving, *tm), models * 2)
                )
            assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
