"""The CPU LoRA fix: rows with no adapter (index -1) get no delta, in every gathering op."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
punica_cpu = pytest.importorskip("vllm.lora.punica_wrapper.punica_cpu")

from serving import lora_patch  # noqa: E402

lora_patch.apply()

SLOTS, RANK, HIDDEN, OUT = 3, 4, 8, 6


def _weights() -> tuple:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(SLOTS, 1, RANK, HIDDEN, generator=g)  # shrink: hidden -> rank
    b = torch.randn(SLOTS, 1, OUT, RANK, generator=g)  # expand: rank -> out
    return a, b


INDICES = torch.tensor([-1, 0, 2, -1, 1])


def _shrink(op) -> torch.Tensor:
    a, _ = _weights()
    x = torch.ones(len(INDICES), HIDDEN)
    out = torch.zeros(len(INDICES), RANK)
    op(x, a, out, INDICES, 1.0)
    return out


def _expand(op) -> torch.Tensor:
    _, b = _weights()
    x = torch.ones(len(INDICES), RANK)
    out = torch.full((len(INDICES), OUT), 5.0)
    op(x, b, out, INDICES, True)
    return out


def test_unpatched_engine_still_has_the_bug() -> None:
    """If this fails, vLLM fixed the gather upstream: delete serving/lora_patch.py."""
    out = _shrink(lora_patch.ORIGINALS["bgmv_shrink"])
    assert out[0].abs().sum() > 0, "vLLM no longer applies an adapter to index -1 rows"


def test_shrink_gives_base_rows_nothing_and_adapter_rows_their_own_slot() -> None:
    fixed = _shrink(punica_cpu.bgmv_shrink)
    reference = _shrink(lora_patch.ORIGINALS["bgmv_shrink"])
    assert torch.all(fixed[[0, 3]] == 0)
    assert torch.equal(fixed[[1, 2, 4]], reference[[1, 2, 4]])


def test_expand_leaves_base_rows_untouched() -> None:
    fixed = _expand(punica_cpu.bgmv_expand)
    reference = _expand(lora_patch.ORIGINALS["bgmv_expand"])
    assert torch.all(fixed[[0, 3]] == 5.0)
    assert torch.equal(fixed[[1, 2, 4]], reference[[1, 2, 4]])


def test_expand_slice_and_the_prefill_path_are_fixed_too() -> None:
    _, b = _weights()
    x = torch.ones(len(INDICES), RANK)
    out = torch.zeros(len(INDICES), OUT + 2)
    punica_cpu.bgmv_expand_slice(x, b, out, INDICES, 2, OUT, True)
    assert torch.all(out[[0, 3]] == 0) and out[1].abs().sum() > 0

    # sgmv_* (prefill) explode per-sequence indices and call the gathering ops by module global.
    a, _ = _weights()
    seq_lens = torch.tensor([2, 3])
    lora_idx = torch.tensor([-1, 1])
    xs = torch.ones(5, HIDDEN)
    shrunk = torch.zeros(5, RANK)
    punica_cpu.sgmv_shrink(xs, a, shrunk, None, seq_lens, lora_idx, 2, 3, 5, 1.0)
    assert torch.all(shrunk[:2] == 0) and torch.all(shrunk[2:].abs().sum(-1) > 0)


def test_apply_is_idempotent() -> None:
    assert lora_patch.apply() is False
