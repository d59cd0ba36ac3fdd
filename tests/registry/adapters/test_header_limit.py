"""An uploaded adapter's safetensors header is capped by a setting, before it is parsed."""

from __future__ import annotations

import struct

import pytest

from tests.lora_files import make_adapter
from tests.registry.adapters.conftest import AdapterWorld


def test_header_over_the_setting_is_422_and_nothing_is_stored(
    aw: AdapterWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, weights = make_adapter("tiny")
    (size,) = struct.unpack("<Q", weights[:8])
    monkeypatch.setattr(aw.world.stack.app.state.settings, "adapter_max_header_bytes", size - 1)
    keys_before = set(aw.world.stack.store.list_keys(""))
    resp = aw.upload(config, weights)
    assert resp.status_code == 422, resp.text
    assert f"header length {size:,} is larger than the limit of {size - 1:,}" in resp.text
    assert set(aw.world.stack.store.list_keys("")) == keys_before
    monkeypatch.setattr(aw.world.stack.app.state.settings, "adapter_max_header_bytes", size)
    assert aw.upload(config, weights).status_code == 201


def test_default_setting_refuses_a_huge_header(aw: AdapterWorld) -> None:
    config, _ = make_adapter("tiny")
    weights = struct.pack("<Q", 14_600_000) + b"{" + b" " * 1000
    resp = aw.upload(config, weights)
    assert resp.status_code == 422 and "larger than the limit of 1,048,576 bytes" in resp.text
