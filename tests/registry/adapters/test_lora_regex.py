"""Regexes from adapter configs are matched in linear time (RE2), whatever their shape."""

from __future__ import annotations

import time

import pytest

from registry.base_models.inspect import BaseModelInfo
from tests.registry.adapters.fakes import Spec, inspected_llama, lora_tensors, one
from tests.registry.adapters.fakes import check_adapter as check

# Bounded repeats chain up: Python's re needs seconds for 4 of these, minutes for 9.
BOUNDED_CHAIN = ".{0,40}" * 9 + "X"
PATHOLOGICAL = [
    ".{0,40}" * 4 + "X",
    BOUNDED_CHAIN,
    ".{0,1000}" * 20 + "X",  # a huge automaton: refused fast rather than compiled for seconds
    "(.*)*X",
    r"(\w+\.)+X",
    "(?:q|qq)*X",
]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> BaseModelInfo:
    return inspected_llama(tmp_path_factory.mktemp("tiny-llama"))


def _timed(base: BaseModelInfo, tensors: Spec | None = None, **config: object) -> list[str]:
    start = time.perf_counter()
    problems = check(base, tensors, **config)
    assert time.perf_counter() - start < 0.5, config
    return problems


@pytest.mark.parametrize("regex", PATHOLOGICAL)
def test_backtracking_shapes_are_matched_or_refused_fast(base: BaseModelInfo, regex: str) -> None:
    assert len(BOUNDED_CHAIN) == 64
    assert _timed(base, target_modules=regex)  # matches nothing, or is refused
    _timed(base, rank_pattern={regex: 8})
    _timed(base, alpha_pattern={regex: 16})


def test_nested_repeats_match_like_python(base: BaseModelInfo) -> None:
    assert _timed(base, target_modules=r"(\w+\.)+(q|v)_proj") == []
    tensors = lora_tensors(["self_attn.q_proj"], r=16) | lora_tensors(["self_attn.v_proj"], r=8)
    assert _timed(base, tensors, rank_pattern={r"(\w+\.)*q_proj": 16}) == []


@pytest.mark.parametrize(
    ("regex", "construct"),
    [
        (r"(q)_proj\1", r"invalid escape sequence: \1"),
        (r"(?P<a>q)_proj(?P=a)", "(?P="),
        (r".*(?<=q)_proj", "(?<="),
        (r".*\.(?=q)q_proj", "(?="),
        (r".*\.(?>q_proj)", "(?>"),
        (r".*\.q_proj\Z", r"\Z"),
    ],
)
def test_constructs_re2_cannot_match_are_refused_by_name(
    base: BaseModelInfo, regex: str, construct: str
) -> None:
    problems = _timed(base, target_modules=regex)
    one(problems, f"target_modules {regex!r}")
    problem = problems[0]
    assert construct in problem and "backreferences" in problem and "look-behind" in problem
    assert f"rank_pattern key {regex!r}" in _timed(base, rank_pattern={regex: 8})[0]


def test_leading_lookaheads_keep_python_semantics(base: BaseModelInfo) -> None:
    assert _timed(base, target_modules=r"^(?!.*vision).*\.(q|v)_proj$") == []
    assert _timed(base, target_modules=r"(?=model\.)(?!.*mlp).*\.(q|v)_proj") == []
    problems = _timed(base, target_modules=r"(?!.*q_proj).*\.(q|v)_proj")
    assert problems and all("q_proj' is not in target_modules" in p for p in problems[:-1])
    problems = _timed(base, target_modules=r"^(?=.*vision).*\.(q|v)_proj$")
    assert "matches no tensor's module" in problems[-1]
