from __future__ import annotations

import pytest

from registry.adapters.safetensors import parse_header
from registry.base_models.inspect import BaseModelInfo
from tests.registry.adapters.fakes import check_adapter as check
from tests.registry.adapters.fakes import inspected_llama, lora_tensors, one, safetensors_bytes


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> BaseModelInfo:
    return inspected_llama(tmp_path_factory.mktemp("tiny-llama"))


Q_A = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"


def test_a_peft_adapter_is_accepted(base: BaseModelInfo) -> None:
    assert check(base) == []


def test_real_peft_tensor_names(base: BaseModelInfo) -> None:
    # As `PeftModel.save_pretrained` names them for a LlamaForCausalLM, r=8, hidden 64.
    header = parse_header(safetensors_bytes(lora_tensors(r=8)))
    assert header.tensors[Q_A].shape == (8, 64)
    assert header.tensors[Q_A.replace("lora_A", "lora_B")].shape == (64, 8)
    assert check(base) == []


def test_adapter_name_segment_is_accepted(base: BaseModelInfo) -> None:
    assert check(base, lora_tensors(adapter_name="default")) == []


def test_every_linear_module_and_half_precision(base: BaseModelInfo) -> None:
    modules = [f"self_attn.{m}_proj" for m in "qkvo"]
    modules += [f"mlp.{m}_proj" for m in ("gate", "up", "down")]
    tensors = lora_tensors(modules, r=16, dtype="BF16")
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert check(base, tensors, r=16, target_modules=targets) == []
    assert check(base, lora_tensors(modules, dtype="F16"), target_modules="all-linear") == []


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("base_model.model.model.embed_tokens.lora_embedding_A", "LoRA on an embedding"),
        ("base_model.model.lm_head.modules_to_save.default.weight", "modules_to_save"),
        ("base_model.model.lm_head.weight", "a fully trained module (modules_to_save)"),
        ("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", "DoRA"),
    ],
)
def test_non_linear_lora_tensors_are_refused(base: BaseModelInfo, name: str, needle: str) -> None:
    problems = check(base, lora_tensors() | {name: ("F32", [8, 64])})
    one(problems, needle)
    assert "only LoRA on linear layers is supported" in problems[0]


@pytest.mark.parametrize(
    "name",
    [
        "model.layers.0.self_attn.q_proj.lora_A.weight",  # no base_model.model. prefix
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.bias",
        "base_model.model.model.layers.0.self_attn.q_proj.lora_C.weight",
    ],
)
def test_tensor_names_must_follow_peft(base: BaseModelInfo, name: str) -> None:
    problems = check(base, lora_tensors() | {name: ("F32", [8, 64])})
    one(problems, "is not named like a PEFT LoRA weight")


def test_lora_on_lm_head_is_refused(base: BaseModelInfo) -> None:
    tensors = lora_tensors() | {
        "base_model.model.lm_head.lora_A.weight": ("F32", [8, 64]),
        "base_model.model.lm_head.lora_B.weight": ("F32", [128, 8]),
    }
    problems = check(base, tensors)
    assert len(problems) == 2
    assert all("not in the base model's decoder layers" in p for p in problems)


def test_layer_index_out_of_range(base: BaseModelInfo) -> None:
    problems = check(base, lora_tensors(layers=[0, 1, 2]))
    assert len(problems) == 4
    assert all("layer 2 does not exist, the base model has 2" in p for p in problems)


@pytest.mark.parametrize("index", ["00", "01", "-1", "x"])
def test_layer_index_must_be_canonical(base: BaseModelInfo, index: str) -> None:
    name = f"base_model.model.model.layers.{index}.self_attn.q_proj.lora_A.weight"
    problems = check(base, lora_tensors() | {name: ("F32", [8, 64])})
    assert "is not in the base model's decoder layers" in problems[0]


def test_module_missing_from_the_base(base: BaseModelInfo) -> None:
    path = "base_model.model.model.layers.0.self_attn.c_attn"
    tensors = lora_tensors() | {
        f"{path}.lora_A.weight": ("F32", [8, 64]),
        f"{path}.lora_B.weight": ("F32", [192, 8]),
    }
    problems = check(base, tensors, target_modules=["q_proj", "v_proj", "c_attn"])
    assert len(problems) == 2 and all("no linear module 'self_attn.c_attn'" in p for p in problems)


def test_adapter_built_for_another_hidden_size(base: BaseModelInfo) -> None:
    tensors = {Q_A: ("F32", [8, 128]), Q_A.replace("lora_A", "lora_B"): ("F32", [128, 8])}
    problems = check(base, tensors, target_modules=["q_proj"])
    assert problems == [
        f"tensor '{Q_A}' has shape [8, 128], expected [8, 64]: the base model's self_attn.q_proj "
        "is [64 out, 64 in] and the rank is 8",
        f"tensor '{Q_A.replace('lora_A', 'lora_B')}' has shape [128, 8], expected [64, 8]: the "
        "base model's self_attn.q_proj is [64 out, 64 in] and the rank is 8",
    ]


@pytest.mark.parametrize(
    ("kind", "shape", "expected"),
    [("lora_A", [4, 64], "[8, 64]"), ("lora_B", [64, 8], "[32, 8]"), ("lora_A", [512], "[8, 64]")],
)
def test_wrong_shapes(base: BaseModelInfo, kind: str, shape: list[int], expected: str) -> None:
    name = f"base_model.model.model.layers.1.self_attn.v_proj.{kind}.weight"
    one(check(base, lora_tensors() | {name: ("F32", shape)}), f"expected {expected}")


def test_unpaired_tensors(base: BaseModelInfo) -> None:
    tensors = lora_tensors()
    del tensors[Q_A]
    del tensors["base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"]
    assert check(base, tensors) == [
        "module 'model.layers.0.self_attn.q_proj' has lora_B but no lora_A tensor",
        "module 'model.layers.1.self_attn.v_proj' has lora_A but no lora_B tensor",
    ]


def test_same_weight_twice(base: BaseModelInfo) -> None:
    tensors = lora_tensors() | {Q_A.replace("lora_A", "lora_A.default"): ("F32", [8, 64])}
    one(check(base, tensors), "are the same LoRA weight")


@pytest.mark.parametrize("dtype", ["F64", "I8", "U8"])
def test_dtypes(base: BaseModelInfo, dtype: str) -> None:
    problems = check(base, lora_tensors(dtype=dtype))
    assert len(problems) == 8 and f"dtype {dtype} is not one of F32, F16, BF16" in problems[0]


def test_no_tensors(base: BaseModelInfo) -> None:
    problems = check(base, {})
    assert problems[0] == "adapter_model.safetensors has no tensors"


def test_problems_are_capped(base: BaseModelInfo) -> None:
    tensors = {f"junk.{i}": ("F32", [1]) for i in range(30)}
    problems = check(base, tensors, target_modules=["q_proj"])
    assert len(problems) == 21
    assert problems[-1] == "and 11 more problems"
