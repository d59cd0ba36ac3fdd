from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from registry.adapters.lora_check import parse_adapter_config
from registry.base_models.inspect import BaseModelInfo
from tests.registry.adapters.fakes import adapter_config, inspected_llama, lora_tensors, one
from tests.registry.adapters.fakes import check_adapter as check


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> BaseModelInfo:
    return inspected_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.mark.parametrize("peft_type", ["lora", "Lora"])
def test_peft_type_is_case_insensitive(base: BaseModelInfo, peft_type: str) -> None:
    assert check(base, peft_type=peft_type) == []


@pytest.mark.parametrize("peft_type", ["IA3", None, 3])
def test_other_peft_types_are_refused(base: BaseModelInfo, peft_type: object) -> None:
    one(check(base, peft_type=peft_type), "only LoRA adapters")


@pytest.mark.parametrize("r", [0, -1, "8", True, None, 8.0])
def test_rank_must_be_a_positive_integer(base: BaseModelInfo, r: object) -> None:
    assert "r must be a positive integer" in check(base, r=r)[0]


def test_rank_above_the_serving_maximum(base: BaseModelInfo) -> None:
    problems = check(base, lora_tensors(r=32), r=32, max_rank=16)
    one(problems, "adapter_config.json: r 32 is above base model 'tiny''s maximum LoRA rank 16")
    assert check(base, lora_tensors(r=16), r=16, max_rank=16) == []


def test_rank_pattern(base: BaseModelInfo) -> None:
    tensors = lora_tensors(["self_attn.q_proj"], r=16) | lora_tensors(["self_attn.v_proj"], r=8)
    assert check(base, tensors, rank_pattern={"q_proj": 16}) == []
    assert check(base, tensors, rank_pattern={r"model.layers.\d+.self_attn.q_proj": 16}) == []
    problems = check(base, tensors, rank_pattern={"q_proj": 16}, max_rank=8)
    assert problems == [
        "adapter_config.json: rank_pattern['q_proj'] 16 is above base model 'tiny''s maximum "
        "LoRA rank 8 (set when it was registered; ops can register a base model with a higher "
        "--max-lora-rank)"
    ]
    problems = check(base, tensors, rank_pattern={"q_proj": 0})
    assert problems[0] == "adapter_config.json: rank_pattern['q_proj'] is 0, not a positive integer"
    problems = check(base, tensors)  # no pattern: q_proj tensors do not have rank r=8
    assert len(problems) == 4 and all("q_proj" in p and "rank is 8" in p for p in problems)


@pytest.mark.parametrize(
    ("pattern", "needle"),
    [
        ([], "rank_pattern must be an object"),
        ({"(": 8}, "rank_pattern key '(' is not a valid regex"),
    ],
)
def test_invalid_rank_pattern(base: BaseModelInfo, pattern: object, needle: str) -> None:
    assert needle in check(base, rank_pattern=pattern)[0]


@pytest.mark.parametrize("alpha", [None, "16", True])
def test_lora_alpha_must_be_a_number(base: BaseModelInfo, alpha: object) -> None:
    one(check(base, lora_alpha=alpha), "lora_alpha must be a number")
    assert check(base, lora_alpha=8.5) == []


def test_alpha_pattern_values_must_be_numbers(base: BaseModelInfo) -> None:
    problems = check(base, alpha_pattern={"q_proj": "x"})
    one(problems, "alpha_pattern['q_proj'] is 'x', not a number")


@pytest.mark.parametrize("targets", [[], None, "", ["q_proj", 3], ["q_proj", ""], {"q_proj": 1}])
def test_target_modules_must_be_names(base: BaseModelInfo, targets: object) -> None:
    assert "target_modules must be a non-empty list" in check(base, target_modules=targets)[0]


def test_target_modules_as_a_regex(base: BaseModelInfo) -> None:
    assert check(base, target_modules=r".*\.(q_proj|v_proj)") == []
    problems = check(base, target_modules=r".*\.q_proj")  # fullmatch: v_proj is not covered
    assert len(problems) == 4 and all("v_proj' is not in target_modules" in p for p in problems)
    assert "matches no tensor's module" in check(base, target_modules="k_proj")[-1]
    one(check(base, target_modules="(q_proj"), "target_modules '(q_proj' is not a valid regex")


def test_tensor_outside_target_modules(base: BaseModelInfo) -> None:
    tensors = lora_tensors(["self_attn.q_proj", "self_attn.k_proj"])
    problems = check(base, tensors)
    assert sum("k_proj' is not in target_modules" in p for p in problems) == 4
    assert "target module 'v_proj' has no LoRA tensors in the adapter" in problems


def test_declared_target_without_tensors(base: BaseModelInfo) -> None:
    problems = check(base, target_modules=["q_proj", "v_proj", "o_proj"])
    assert problems == ["target module 'o_proj' has no LoRA tensors in the adapter"]


@pytest.mark.parametrize(
    "name", ["/models/tiny-llama", "tiny", "file:///models/tiny-llama", "/elsewhere/tiny-llama/"]
)
def test_base_model_matches_by_name_uri_or_basename(base: BaseModelInfo, name: str) -> None:
    assert check(base, base_model_name_or_path=name) == []


@pytest.mark.parametrize("name", ["meta-llama/Llama-3.1-8B", None, ""])
def test_base_model_mismatch(base: BaseModelInfo, name: object) -> None:
    one(check(base, base_model_name_or_path=name), "base_model_name_or_path")


def test_dora_and_trained_biases_are_refused(base: BaseModelInfo) -> None:
    one(check(base, use_dora=True), "DoRA adapters are not supported")
    one(check(base, bias="all"), "bias is 'all'")


def test_parse_adapter_config() -> None:
    assert parse_adapter_config(json.dumps(adapter_config()).encode())["r"] == 8
    with pytest.raises(ValueError, match="adapter_config.json is not valid JSON"):
        parse_adapter_config(b"{r: 8}")
    with pytest.raises(ValueError, match="must be a JSON object"):
        parse_adapter_config(b"[1]")
    with pytest.raises(ValueError, match="the limit is 1 MiB"):
        parse_adapter_config(b" " * ((1 << 20) + 1))


def test_registry_modules_stay_free_of_heavy_libraries() -> None:
    code = (
        "import sys, registry.adapters.lora_check, registry.base_models.inspect\n"
        "heavy = {'torch', 'peft', 'transformers', 'numpy', 'safetensors', 'vllm'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("regex", "needle"),
    [
        (r"(q)_proj\1", "cannot be matched in linear time"),
        ("q_proj|" * 50 + "v_proj", "is longer than 256 characters"),
    ],
)
def test_regexes_that_could_backtrack_for_ever_are_refused(
    base: BaseModelInfo, regex: str, needle: str
) -> None:
    # Other backtracking shapes are matched by RE2 in linear time: test_lora_regex.py
    one(check(base, target_modules=regex), needle)
    assert needle in check(base, rank_pattern={regex: 8})[0]


def test_usual_peft_regexes_are_accepted(base: BaseModelInfo) -> None:
    for regex in [
        r".*\.(q_proj|v_proj)",
        r"^(?!.*vision).*\.(q|v)_proj$",
        r"model\.layers\.\d+\.self_attn\.(q_proj|v_proj)",
        r"model.layers.[0-9]+.self_attn.[qv]_proj",
    ]:
        assert check(base, target_modules=regex) == [], regex
