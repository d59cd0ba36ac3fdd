"""The engine's `--max-lora-rank` is the served base model's `max_lora_rank` (issue 20, aim 2):
what the registry accepts is exactly what the engine loads, with no padding past it."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from registry.models import BaseModel
from registry.settings import Settings
from serving import engine


def _settings(tmp_path: Path, **kwargs: object) -> Settings:
    return Settings(home=tmp_path / "home", **kwargs)  # type: ignore[arg-type]


def _rank(argv: list[str]) -> int:
    return int(argv[argv.index("--max-lora-rank") + 1])


@pytest.mark.parametrize("base_max", [8, 16, 128])
def test_prepare_starts_vllm_at_the_base_models_rank(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_max: int
) -> None:
    base = BaseModel(name="tiny", tool_call_parser=None, max_lora_rank=base_max)
    monkeypatch.setattr(engine, "local_base_model", lambda s, n: (base, tmp_path / "model"))
    # the platform default (64) is for new registrations only; the engine follows the row
    assert _rank(engine.prepare(_settings(tmp_path), "tiny").argv) == base_max


def test_the_engine_setting_overrides_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path, engine_max_lora_rank=32)
    argv = engine.build_launch(settings, "tiny", tmp_path / "m", max_lora_rank=16).argv
    assert _rank(argv) == 32
    with structlog.testing.capture_logs() as logs:
        argv = engine.build_launch(settings, "tiny", tmp_path / "m", max_lora_rank=64).argv
    assert _rank(argv) == 32
    (warning,) = [e for e in logs if e["event"] == "engine.max_lora_rank_below_base_model"]
    assert warning["log_level"] == "warning" and warning["base_model_max_lora_rank"] == 64


def test_an_override_at_or_above_the_base_model_does_not_warn(tmp_path: Path) -> None:
    settings = _settings(tmp_path, engine_max_lora_rank=64)
    with structlog.testing.capture_logs() as logs:
        assert engine.served_max_lora_rank(settings, "tiny", 64) == 64
    assert logs == []


@pytest.mark.parametrize("name", ["max_lora_rank", "engine_max_lora_rank"])
def test_settings_refuse_a_rank_vllm_cannot_serve(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not a rank vLLM can serve"):
        _settings(tmp_path, **{name: 48})
