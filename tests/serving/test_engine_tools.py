"""The engine serves tool calling for a base model registered with a tool-call parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.models import BaseModel
from registry.settings import Settings
from serving import engine


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")  # type: ignore[call-arg]


def test_a_parser_turns_tool_calling_on(tmp_path: Path) -> None:
    launch = engine.build_launch(
        _settings(tmp_path), "tiny", tmp_path / "model", max_lora_rank=64, tool_call_parser="hermes"
    )
    i = launch.argv.index("--tool-call-parser")
    assert launch.argv[i + 1] == "hermes" and "--enable-auto-tool-choice" in launch.argv


def test_no_parser_no_tool_calling(tmp_path: Path) -> None:
    argv = engine.build_launch(
        _settings(tmp_path), "tiny", tmp_path / "model", max_lora_rank=64
    ).argv
    assert "--tool-call-parser" not in argv and "--enable-auto-tool-choice" not in argv


@pytest.mark.parametrize("parser", ["hermes", None])
def test_prepare_uses_the_base_models_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parser: str | None
) -> None:
    base = BaseModel(name="tiny", tool_call_parser=parser, max_lora_rank=64)

    def local_base_model(settings: Settings, name: str) -> tuple[BaseModel, Path]:
        assert name == "tiny"
        return base, tmp_path / "model"  # the registered row and its verified copy

    monkeypatch.setattr(engine, "local_base_model", local_base_model)
    argv = engine.prepare(_settings(tmp_path), "tiny").argv
    assert ("--tool-call-parser" in argv) == (parser is not None)
    assert argv[argv.index("--model") + 1] == str(tmp_path / "model")
