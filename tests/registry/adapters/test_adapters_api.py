from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import func, select

from registry.models import AdapterVersion
from tests.conftest import World
from tests.lora_files import make_adapter, make_base_model
from tests.registry.adapters.conftest import AdapterWorld


@pytest.mark.smoke
def test_base_model_is_inspected_and_digested(aw: AdapterWorld, tmp_path) -> None:  # type: ignore[no-untyped-def]
    base = aw.base
    assert base["num_layers"] == 2 and base["architecture"] == "LlamaForCausalLM"
    assert base["module_shapes"]["self_attn.q_proj"] == [64, 64]
    assert base["module_shapes"]["mlp.down_proj"] == [64, 172]
    assert set(base["files"]) == {"config.json", "model.safetensors"} and len(base["digest"]) == 64
    got = aw.http.get("/v1/base-models/tiny", headers=aw.acme.headers).json()
    assert got["digest"] == base["digest"]
    # the same files give the same digest; a changed weight file a different one
    other = make_base_model(tmp_path / "copy")
    resp = aw.http.post(
        "/v1/base-models",
        json={"name": "copy", "uri": str(other), "expected_digest": base["digest"]},
        headers=aw.world.ops.headers,
    )
    assert resp.status_code == 201 and resp.json()["digest"] == base["digest"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"name": "tiny", "uri": "/nonexistent"}, 409, "already exists"),
        ({"name": "b2", "uri": "/nonexistent/folder"}, 422, "folder"),
        ({"name": "b3", "uri": "relative/path"}, 422, "absolute"),
        ({"name": "b4", "uri": "{base}", "expected_digest": "0" * 64}, 422, "digest"),
    ],
)
def test_base_model_refusals(
    aw: AdapterWorld,
    tmp_path,
    body: dict,
    status: int,  # type: ignore[no-untyped-def]
    needle: str,
) -> None:
    body = {k: v.replace("{base}", str(tmp_path / "tiny-base")) for k, v in body.items()}
    resp = aw.http.post("/v1/base-models", json=body, headers=aw.world.ops.headers)
    assert resp.status_code == status and needle in resp.json()["detail"], resp.text


@pytest.mark.parametrize(
    ("training", "needle"),
    [
        ({"rank": 65}, "maximum"),
        ({"rank": 0}, "rank"),
        ({"target_modules": ["nope_proj"]}, "not linear modules"),
        ({"target_modules": []}, "target_modules"),
        ({"dropout": 1.5}, "dropout"),
        ({"learning_rate": -1}, "learning_rate"),
        ({"unknown_knob": 1}, "unknown_knob"),
    ],
)
def test_adapter_training_config_is_validated(
    aw: AdapterWorld, training: dict, needle: str
) -> None:
    resp = aw.http.post(
        "/v1/tenants/acme/adapters",
        headers=aw.acme.headers,
        json={"name": "x", "base_model": "tiny", "training": training},
    )
    assert resp.status_code == 422 and needle in resp.json()["detail"], resp.text


def test_adapter_conflicts_unknown_base_and_quota(world: World, tmp_path) -> None:  # type: ignore[no-untyped-def]
    make_base_model(tmp_path / "b")
    world.http.post(
        "/v1/base-models",
        json={"name": "tiny", "uri": str(tmp_path / "b")},
        headers=world.ops.headers,
    )
    acme = world.tenant("acme", quota_adapters=2)

    def create(name: str, base: str = "tiny"):  # type: ignore[no-untyped-def]
        return world.http.post(
            "/v1/tenants/acme/adapters",
            headers=acme.headers,
            json={"name": name, "base_model": base},
        )

    assert create("a").status_code == 201
    assert create("a").status_code == 409
    assert create("z", base="nope").status_code == 422
    assert create("b").status_code == 201
    resp = create("c")
    assert resp.status_code == 413 and "quota" in resp.json()["detail"]
    world.http.post("/v1/tenants/acme/adapters/a/archive", headers=acme.headers)
    assert create("c").status_code == 201  # archived adapters free their slot
    names = [
        a["name"]
        for a in world.http.get("/v1/tenants/acme/adapters", headers=acme.headers).json()["items"]
    ]
    assert names == ["b", "c"]


@pytest.mark.smoke
def test_upload_becomes_ready_with_a_verifiable_manifest(aw: AdapterWorld) -> None:
    config, weights = make_adapter("tiny")
    resp = aw.upload(config, weights)
    assert resp.status_code == 201, resp.text
    v = resp.json()
    assert (v["version"], v["status"], v["trigger"]) == (1, "ready", "upload")
    assert v["base_model_digest"] == aw.base["digest"] and v["ready_at"]
    files = v["manifest"]["files"]
    assert files["adapter_model.safetensors"]["sha256"] == hashlib.sha256(weights).hexdigest()
    assert files["adapter_config.json"]["sha256"] == hashlib.sha256(config).hexdigest()
    assert v["size_bytes"] == len(config) + len(weights)
    base = "/v1/tenants/acme/adapters/support/versions/v1/files"
    manifest = aw.http.get(f"{base}/manifest.json", headers=aw.acme.headers)
    assert hashlib.sha256(manifest.content).hexdigest() == v["manifest_digest"]
    assert json.loads(manifest.content) == v["manifest"]
    for name, meta in files.items():
        body = aw.http.get(f"{base}/{name}", headers=aw.acme.headers).content
        assert hashlib.sha256(body).hexdigest() == meta["sha256"]
    second = aw.upload().json()
    assert second["version"] == 2 and second["parent_version"] == 1


def _bad_shapes() -> tuple[bytes, bytes]:
    return make_adapter("tiny", hidden=128)  # built for another hidden size


def _undeclared_module() -> tuple[bytes, bytes]:
    config, _ = make_adapter("tiny", targets=("q_proj",))
    _, weights = make_adapter("tiny", targets=("q_proj", "k_proj"))
    return config, weights


@pytest.mark.parametrize(
    ("files", "needle"),
    [
        (lambda: make_adapter("tiny", peft_type="PREFIX_TUNING"), "LORA"),
        (lambda: make_adapter("another-model"), "base model"),
        (lambda: make_adapter("tiny", r=128), "rank"),
        (_bad_shapes, "shape"),
        (_undeclared_module, "k_proj"),
        (
            lambda: (make_adapter("tiny")[0], b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}"),
            "header",
        ),
        (lambda: (make_adapter("tiny")[0], make_adapter("tiny")[1][:-10]), "truncated"),
        (lambda: (b"not json", make_adapter("tiny")[1]), "JSON"),
        (lambda: (make_adapter("tiny")[0], b"\x80\x04\x95pickle-bytes"), "pickle"),
    ],
)
def test_refused_uploads_store_nothing(aw: AdapterWorld, files, needle: str) -> None:  # type: ignore[no-untyped-def]
    config, weights = files()
    resp = aw.upload(config, weights)
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert needle.lower() in (body["detail"] + " ".join(body.get("problems", []))).lower(), body
    _assert_no_versions(aw)


def test_pickle_bin_file_is_refused(aw: AdapterWorld) -> None:
    config, weights = make_adapter("tiny")
    resp = aw.upload(config, weights, weights_name="adapter_model.bin")
    assert resp.status_code == 422 and "pickle" in resp.json()["detail"]
    _assert_no_versions(aw)


def _assert_no_versions(aw: AdapterWorld) -> None:
    with aw.world.stack.session() as session:
        assert session.execute(select(func.count()).select_from(AdapterVersion)).scalar_one() == 0
    assert list(aw.world.stack.store.list_keys("")) == []


def test_other_tenant_sees_nothing(aw: AdapterWorld) -> None:
    aw.upload()
    globex = aw.world.tenant("globex")
    for path in (
        "/v1/tenants/acme/adapters/support",
        "/v1/tenants/acme/adapters/support/versions/1",
        "/v1/tenants/globex/adapters/support",
        "/v1/tenants/globex/adapters/support/versions/1",
    ):
        assert aw.http.get(path, headers=globex.headers).status_code == 404, path
    assert (
        aw.http.get(
            "/v1/tenants/acme/adapters/support/versions/9", headers=aw.acme.headers
        ).status_code
        == 404
    )
    assert (
        aw.http.get(
            "/v1/tenants/acme/adapters/support/versions/x1", headers=aw.acme.headers
        ).status_code
        == 422
    )
