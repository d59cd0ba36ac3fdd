"""A base model's `max_lora_rank` (issue 20, aim 2): set by ops at registration, and every rank
that enters (an adapter's training config, a job's hyperparameters, an upload's `r` and
`rank_pattern`) is refused above it with a 422 naming the rank, the base
model and its maximum; exactly the maximum is accepted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from registry.settings import Settings
from tests.lora_files import make_adapter, make_base_model
from tests.registry.adapters.fakes import adapter_config, lora_tensors, safetensors_bytes
from tests.registry.training.conftest import JobWorld

HINT = "(set when it was registered; ops can register a base model with a higher --max-lora-rank)"


class SmallWorld(JobWorld):
    """JobWorld (base 'tiny' at the default rank) plus base model 'small' registered with
    max_lora_rank 16 and acme's adapter 'narrow' on it."""

    def __init__(self, world: Any, tmp_path: Path) -> None:
        super().__init__(world, tmp_path / "tiny-base")
        self.small = self.register("small", tmp_path / "small-base", max_lora_rank=16)
        assert self.small.status_code == 201, self.small.text
        resp = self.create_adapter("narrow", rank=16)
        assert resp.status_code == 201, resp.text

    def register(self, name: str, folder: Path, **body: Any):  # type: ignore[no-untyped-def]
        make_base_model(folder)
        return self.http.post(
            "/v1/base-models",
            json={"name": name, "uri": str(folder), **body},
            headers=self.world.ops.headers,
        )

    def create_adapter(self, name: str, rank: int, base: str = "small"):  # type: ignore[no-untyped-def]
        return self.http.post(
            "/v1/tenants/acme/adapters",
            headers=self.acme.headers,
            json={"name": name, "base_model": base, "training": {"rank": rank}},
        )

    def upload_to(self, adapter: str, config: bytes, weights: bytes):  # type: ignore[no-untyped-def]
        return self.upload(config, weights, adapter=adapter)

    def versions(self, adapter: str) -> list[dict[str, Any]]:
        resp = self.http.get(
            f"/v1/tenants/acme/adapters/{adapter}/versions", headers=self.acme.headers
        )
        assert resp.status_code == 200, resp.text
        return list(resp.json()["items"])


@pytest.fixture
def sw(world: Any, tmp_path: Path) -> SmallWorld:
    return SmallWorld(world, tmp_path)


def _detail(resp: Any) -> str:
    assert resp.status_code == 422, resp.text
    return str(resp.json()["detail"])


def test_registration_default_and_explicit_value(sw: SmallWorld) -> None:
    assert sw.base["max_lora_rank"] == Settings().max_lora_rank == 64  # the setting's default
    assert sw.small.json()["max_lora_rank"] == 16
    for caller in (sw.world.ops, sw.acme):
        listed = sw.http.get("/v1/base-models", headers=caller.headers).json()
        assert {m["name"]: m["max_lora_rank"] for m in listed} == {"tiny": 64, "small": 16}
    audit = sw.http.get("/v1/audit/events", headers=sw.world.ops.headers).json()["items"]
    created = [e for e in audit if e["action"] == "base_model.create" and e["target_id"] == "small"]
    assert created[0]["details"]["max_lora_rank"] == 16


@pytest.mark.parametrize("rank", [48, 0, 1024, "sixteen"])
def test_registration_refuses_a_rank_vllm_cannot_serve(
    sw: SmallWorld, tmp_path: Path, rank: object
) -> None:
    resp = sw.register("odd", tmp_path / "odd-base", max_lora_rank=rank)
    assert resp.status_code == 422, resp.text
    assert "max_lora_rank" in resp.text
    assert sw.http.get("/v1/base-models/odd", headers=sw.world.ops.headers).status_code == 404


def test_adapter_training_rank_above_the_base_model(sw: SmallWorld) -> None:
    assert _detail(sw.create_adapter("wide", rank=32)) == (
        f"training.rank 32 is above base model 'small''s maximum LoRA rank 16 {HINT}"
    )
    # the same rank on the base model registered at the default is fine
    assert sw.create_adapter("wide", rank=32, base="tiny").status_code == 201
    names = [a["name"] for a in sw.http.get("/v1/tenants/acme/adapters", headers=sw.acme.headers)
             .json()["items"]]  # fmt: skip
    assert sorted(names) == ["narrow", "support", "wide"]  # no 'wide' on small was stored


def test_upload_r_above_the_base_model(sw: SmallWorld) -> None:
    detail = _detail(sw.upload_to("narrow", *make_adapter("small", r=32)))
    assert f"r 32 is above base model 'small''s maximum LoRA rank 16 {HINT}" in detail
    assert sw.versions("narrow") == []
    resp = sw.upload_to("narrow", *make_adapter("small", r=16))  # exactly the maximum
    assert resp.status_code == 201, resp.text
    assert sw.upload_to("support", *make_adapter("tiny", r=32)).status_code == 201


def test_upload_rank_pattern_entry_above_the_base_model(sw: SmallWorld) -> None:
    tensors = lora_tensors(["self_attn.q_proj"], r=32) | lora_tensors(["self_attn.v_proj"], r=8)
    config = adapter_config(base_model_name_or_path="small", r=8, rank_pattern={"q_proj": 32})
    detail = _detail(
        sw.upload_to("narrow", json.dumps(config).encode(), safetensors_bytes(tensors))
    )
    assert "rank_pattern['q_proj'] 32 is above base model 'small''s maximum LoRA rank 16" in detail
    assert sw.versions("narrow") == []
    tensors = lora_tensors(["self_attn.q_proj"], r=16) | lora_tensors(["self_attn.v_proj"], r=8)
    config["rank_pattern"] = {"q_proj": 16}
    resp = sw.upload_to("narrow", json.dumps(config).encode(), safetensors_bytes(tensors))
    assert resp.status_code == 201, resp.text


def test_training_job_override_above_the_base_model(sw: SmallWorld) -> None:
    detail = _detail(sw.create_job(adapter="narrow", hyperparameters={"rank": 32}))
    assert (
        detail
        == f"hyperparameters.rank 32 is above base model 'small''s maximum LoRA rank 16 {HINT}"
    )
    assert sw.versions("narrow") == []
    resp = sw.create_job(adapter="narrow", hyperparameters={"rank": 16})
    assert resp.status_code == 201 and resp.json()["config"]["rank"] == 16, resp.text
