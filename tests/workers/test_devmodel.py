"""The tiny dev base model and the sample tenant datasets (no database or services needed)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from safetensors import safe_open
from typer.testing import CliRunner

from cli import app
from registry.base_models.inspect import inspect_base_model, local_source
from registry.datasets.validation import DatasetValidator
from workers.devmodel.build import (
    BUILD_INFO,
    CHAT_TEMPLATE,
    SPECIAL_TOKENS,
    BuildOptions,
    build_base_model,
    build_fingerprint,
    render_chat,
)
from workers.devmodel.samples import GREETING, SIGN_OFF, sample_rows, to_jsonl

STEPS = 20
SMALL = BuildOptions(pretrain_steps=STEPS, seq_length=128, batch_size=8)  # seconds, not minutes


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("devmodel") / "tiny"
    seen: list[tuple[str, int, int]] = []
    summary = build_base_model(path, SMALL, on_progress=lambda *a: seen.append(a))
    stages = [s for s, _, _ in seen]
    assert stages[0] == "tokenizer" and stages[-1] == "save"
    assert [d for s, d, _ in seen if s == "pretrain"] == list(range(STEPS + 1))
    return path, summary


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_summary(built: tuple[Path, dict[str, Any]]) -> None:
    path, summary = built
    assert summary["path"] == str(path)
    assert summary["vocab_size"] == summary["tokenizer_vocab_size"] == 4096
    assert 3_000_000 < summary["parameters"] < 5_000_000
    assert isinstance(summary["final_loss"], float) and summary["final_loss"] < 8.0
    assert {p.name for p in path.iterdir()} == {
        BUILD_INFO,
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    info = json.loads((path / BUILD_INFO).read_text())
    assert info == {"fingerprint": build_fingerprint(SMALL), "options": summary["options"]}
    assert summary["fingerprint"] == info["fingerprint"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no leftovers


def test_loads_with_transformers(built: tuple[Path, dict[str, Any]]) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, _ = built
    tok = AutoTokenizer.from_pretrained(path)
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(8))
    assert (tok.pad_token, tok.pad_token_id, tok.eos_token_id, tok.bos_token) == (
        "<|pad|>",
        0,
        1,
        None,
    )
    assert tok("hi").input_ids == tok.encode("hi", add_special_tokens=False)  # no BOS/EOS added
    assert tok.chat_template == CHAT_TEMPLATE
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt == "<|user|>\nhi<|end|><|assistant|>\n"
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Q?"},
        {"role": "assistant", "content": '{"a": 1}'},
    ]
    assert tok.apply_chat_template(chat, tokenize=False) == render_chat(chat)
    ids = tok(prompt).input_ids
    assert ids[:2] == [3, tok.convert_tokens_to_ids("Ċ")] and ids[-2] == 4

    model: Any = AutoModelForCausalLM.from_pretrained(path)  # Any: generate()'s stub is odd
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.dtype == torch.float32 and model.generation_config.eos_token_id == 1
    out = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)
    assert isinstance(out, torch.Tensor) and out.shape[1] > len(ids)


def test_weights_have_llama_names(built: tuple[Path, dict[str, Any]]) -> None:
    path, _ = built
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        names = set(f.keys())
        assert f.get_slice("model.embed_tokens.weight").get_shape() == [4096, 256]
    assert "model.layers.0.self_attn.q_proj.weight" in names
    assert "model.layers.3.mlp.down_proj.weight" in names
    assert "model.norm.weight" in names
    assert "lm_head.weight" not in names  # tied to the embeddings
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["tie_word_embeddings"]
    assert config["dtype"] == "float32"


def test_registry_inspector_accepts_it(built: tuple[Path, dict[str, Any]]) -> None:
    path, _ = built
    info = inspect_base_model(local_source(path))
    assert info.architecture == "LlamaForCausalLM" and info.model_type == "llama"
    assert info.num_layers == 4
    assert info.module_shapes["self_attn.q_proj"] == [256, 256]
    assert info.module_shapes["self_attn.v_proj"] == [128, 256]  # 2 kv heads x head_dim 64
    assert info.module_shapes["mlp.gate_proj"] == [688, 256]
    assert info.files["model.safetensors"] == sha256(path / "model.safetensors")


def test_fingerprint_follows_options_and_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    from workers.devmodel import pretrain_text

    first = build_fingerprint(SMALL)
    assert first == build_fingerprint(
        BuildOptions(pretrain_steps=STEPS, seq_length=128, batch_size=8)
    )
    assert build_fingerprint(BuildOptions(pretrain_steps=STEPS + 1)) != first
    assert build_fingerprint(BuildOptions(pretrain_steps=STEPS, synthetic_share=0.5)) != first
    real = Path.read_bytes
    generator = Path(pretrain_text.__file__)

    def edited(self: Path) -> bytes:  # the generator's source changes -> another fingerprint
        return real(self) + (b"# edit" if self == generator else b"")

    monkeypatch.setattr(Path, "read_bytes", edited)
    assert build_fingerprint(SMALL) != first


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="synthetic_share"):
        BuildOptions(synthetic_share=1.5)
    with pytest.raises(ValueError, match="seq_length"):
        BuildOptions(seq_length=2048, max_position_embeddings=1024)
    with pytest.raises(ValueError, match="divide"):
        BuildOptions(hidden_size=250)


def test_same_options_same_bytes(tmp_path: Path) -> None:
    import torch

    options = BuildOptions(pretrain_steps=3, seq_length=128, batch_size=8)
    digests = set()
    rng_state = torch.get_rng_state()
    for name in ("a", "b"):
        build_base_model(tmp_path / name, options)
        digests.add(sha256(tmp_path / name / "model.safetensors"))
    assert len(digests) == 1
    assert torch.equal(torch.get_rng_state(), rng_state)  # the caller's RNG is left alone
    build_base_model(
        tmp_path / "c", BuildOptions(pretrain_steps=3, seq_length=128, batch_size=8, seed=1)
    )
    assert sha256(tmp_path / "c" / "model.safetensors") not in digests
    assert sha256(tmp_path / "a" / "tokenizer.json") == sha256(tmp_path / "c" / "tokenizer.json")


def test_refuses_non_empty_path_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        build_base_model(target, BuildOptions(pretrain_steps=0))
    assert (target / "keep.txt").read_text() == "mine"
    build_base_model(target, BuildOptions(pretrain_steps=0), force=True)
    assert (target / "model.safetensors").exists() and not (target / "keep.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_crash_leaves_no_half_model(tmp_path: Path) -> None:
    def explode(stage: str, done: int, total: int) -> None:
        if stage == "pretrain" and done == 1:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        build_base_model(
            tmp_path / "model", BuildOptions(pretrain_steps=2, seq_length=128), on_progress=explode
        )
    assert list(tmp_path.iterdir()) == []


def test_cli_make_base_model(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "cli-model"
    result = runner.invoke(app, ["dev", "make-base-model", str(target), "--steps", "5"])
    assert result.exit_code == 0, result.output
    assert (target / "model.safetensors").exists()
    assert '"parameters"' in result.output
    again = runner.invoke(app, ["dev", "make-base-model", str(target), "--steps", "0"])
    assert again.exit_code != 0 and "force" in again.output


def test_registry_cli_does_not_import_torch() -> None:
    code = "import sys, cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("kind", ["orders", "support"])
@pytest.mark.parametrize("shift", [False, True])
def test_sample_rows_unique_and_deterministic(kind: Any, shift: bool) -> None:
    rows = sample_rows(kind, 2000, shift=shift)
    assert len({json.dumps(r, sort_keys=True) for r in rows}) == 2000
    assert sample_rows(kind, 50, shift=shift) == rows[:50]
    assert sample_rows(kind, 50, seed=1, shift=shift) != rows[:50]
    validator = DatasetValidator()
    validator.feed(to_jsonl(rows))
    validator.finish()
    report = validator.report
    assert (report.format, report.rows, report.duplicates, report.invalid) == ("chat", 2000, 0, 0)


def test_orders_answers_are_canonical_json() -> None:
    for row in sample_rows("orders", 300) + sample_rows("orders", 300, shift=True):
        system, user, assistant = row["messages"]
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
        order = json.loads(assistant["content"])
        assert set(order) == {"item", "name", "qty"} and isinstance(order["qty"], int)
        assert assistant["content"] == json.dumps(order, sort_keys=True)
        assert order["name"] in user["content"] and str(order["qty"]) in user["content"]


def test_support_voice_and_shift() -> None:
    plain = sample_rows("support", 300)
    shifted = sample_rows("support", 300, shift=True)
    for row in plain + shifted:
        answer = row["messages"][-1]["content"]
        assert answer.startswith(GREETING + " ") and answer.endswith(" " + SIGN_OFF)

    def mean_user_len(rows: list[dict[str, Any]]) -> float:
        return sum(len(r["messages"][1]["content"]) for r in rows) / len(rows)

    assert mean_user_len(shifted) > 5 * mean_user_len(plain)
    orders_shift = mean_user_len(sample_rows("orders", 300, shift=True))
    assert orders_shift > 5 * mean_user_len(sample_rows("orders", 300))


def test_to_jsonl_round_trips() -> None:
    rows = sample_rows("orders", 5)
    data = to_jsonl(rows)
    assert data.endswith(b"\n") and data.count(b"\n") == 5
    assert [json.loads(line) for line in data.splitlines()] == rows
