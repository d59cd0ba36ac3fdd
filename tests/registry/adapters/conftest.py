from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Caller, World
from tests.lora_files import make_adapter, make_base_model


class AdapterWorld:
    """A registered toy base model 'tiny', tenant acme and its adapter 'support'."""

    def __init__(self, world: World, base_dir: Path) -> None:
        self.world, self.http = world, world.http
        make_base_model(base_dir)
        resp = self.http.post(
            "/v1/base-models",
            json={"name": "tiny", "uri": str(base_dir)},
            headers=world.ops.headers,
        )
        assert resp.status_code == 201, resp.text
        self.base = resp.json()
        self.acme: Caller = world.tenant("acme")
        resp = self.http.post(
            "/v1/tenants/acme/adapters",
            headers=self.acme.headers,
            json={
                "name": "support",
                "base_model": "tiny",
                "training": {"rank": 4, "target_modules": ["q_proj", "v_proj"]},
            },
        )
        assert resp.status_code == 201, resp.text

    def upload(
        self,
        config: bytes | None = None,
        weights: bytes | None = None,
        adapter: str = "support",
        weights_name: str = "adapter_model.safetensors",
    ):  # type: ignore[no-untyped-def]
        if config is None or weights is None:
            default_config, default_weights = make_adapter("tiny")
            config = default_config if config is None else config
            weights = default_weights if weights is None else weights
        files = {
            "adapter_config.json": ("adapter_config.json", config),
            weights_name: (weights_name, weights),
        }
        return self.http.post(
            f"/v1/tenants/acme/adapters/{adapter}/versions", files=files, headers=self.acme.headers
        )

    def set_alias(self, alias: str, version: int, reason: str = ""):  # type: ignore[no-untyped-def]
        return self.http.put(
            f"/v1/tenants/acme/adapters/support/aliases/{alias}",
            json={"version": version, "reason": reason},
            headers=self.acme.headers,
        )


@pytest.fixture
def aw(world: World, tmp_path: Path) -> AdapterWorld:
    return AdapterWorld(world, tmp_path / "tiny-base")
