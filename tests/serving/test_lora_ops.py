"""The traceable CPU LoRA path: `serving/lora_ops.py` and `serving/lora_punica.py`.

Every result is checked against a plain per-token loop (delta = x @ A[slot]^T @ B[slot]^T * scale,
nothing for slot -1), eagerly, inside vLLM's punica wrapper interface, and compiled with
fullgraph=True while the index buffer and the stacked weights change in place between calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
punica_cpu = pytest.importorskip("vllm.lora.punica_wrapper.punica_cpu")

from torch import Tensor  # noqa: E402

from serving import lora_ops, lora_patch  # noqa: E402
from serving.lora_punica import ENV, WRAPPER, PunicaWrapperMasked  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HIDDEN, MAX_RANK = 16, 8
RANKS = (8, 2, 0, 5)  # true rank per slot, padded to MAX_RANK; slot 2 is empty (all zero)
SLOTS = len(RANKS)
QKV = (12, 6, 6)  # three output slices of different sizes
VLLM_WRAPPER = "vllm.lora.punica_wrapper.punica_cpu.PunicaWrapperCPU"
TOL = {"atol": 1e-5, "rtol": 1e-5}


def _stack(out: int, seed: int, ranks: tuple[int, ...] = RANKS) -> tuple[Tensor, ...]:
    """A (slots, 1, MAX_RANK, HIDDEN) and B (slots, 1, out, MAX_RANK), zero past each true rank."""
    g = torch.Generator().manual_seed(seed)
    a = torch.zeros(len(ranks), 1, MAX_RANK, HIDDEN)
    b = torch.zeros(len(ranks), 1, out, MAX_RANK)
    for s, r in enumerate(ranks):
        a[s, 0, :r] = torch.randn(r, HIDDEN, generator=g) * 0.3
        b[s, 0, :, :r] = torch.randn(out, r, generator=g) * 0.3
    return a, b


def _indices(n: int, seed: int = 0) -> Tensor:
    """A mix of every slot, -1 and the empty slot included once there are enough tokens."""
    fixed = torch.tensor([1, -1, 0, 2, 3])
    if n <= len(fixed):
        return fixed[:n].clone()
    g = torch.Generator().manual_seed(seed)
    return torch.cat([fixed, torch.randint(-1, SLOTS, (n - len(fixed),), generator=g)])


def _x(n: int, width: int = HIDDEN, seed: int = 1) -> Tensor:
    return torch.randn(n, width, generator=torch.Generator().manual_seed(seed))


def _per_token(v: Tensor, w: Tensor, idx: Tensor, scale: float = 1.0) -> Tensor:
    """v[t] @ w[slot of t, 0]^T * scale, zero for slot -1: shrink (w = A) or expand (w = B)."""
    out = torch.zeros(v.shape[0], w.shape[-2])
    for t, s in enumerate(idx.tolist()):
        if s >= 0:
            out[t] = v[t] @ w[s, 0].T * scale
    return out


def _reference(x: Tensor, a: Tensor, b: Tensor, idx: Tensor, scale: float) -> Tensor:
    return _per_token(_per_token(x, a, idx, scale), b, idx)


def _wrapper(indices: Tensor, sampler: Tensor | None = None) -> PunicaWrapperMasked:
    w = PunicaWrapperMasked(max_num_batched_tokens=64, max_batches=8, device="cpu")
    w._token_lora_indices[: len(indices)] = indices
    if sampler is not None:
        w._sampler_indices[: len(sampler)] = sampler
    return w


# -- 1. the ops ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 5, 40])
def test_ops_match_the_per_token_reference(n: int) -> None:
    a, b = _stack(out=10, seed=n)
    x, idx = _x(n), _indices(n)
    mask = lora_ops.slot_mask(idx, SLOTS, torch.float32)
    assert mask.shape == (n, SLOTS) and torch.equal(mask.sum(1), (idx >= 0).float())

    h = lora_ops.shrink(x, a, mask)
    torch.testing.assert_close(h, _per_token(x, a, idx, 1.0), **TOL)
    torch.testing.assert_close(lora_ops.expand(h, b, mask), _per_token(h, b, idx), **TOL)

    delta = lora_ops.linear(x, a, b, mask, 0.5)
    torch.testing.assert_close(delta, _reference(x, a, b, idx, 0.5), **TOL)
    nothing = (idx == -1) | (idx == 2)  # no adapter, or the empty slot
    assert torch.all(delta[nothing] == 0)


# -- 2. the wrapper, eagerly --------------------------------------------------------------------


def test_add_lora_linear_adds_each_slices_delta() -> None:
    n, idx = 9, _indices(9)
    stacks = [_stack(out, seed=i) for i, out in enumerate(QKV)]
    x, y0 = _x(n), _x(n, sum(QKV), seed=2)
    y = y0.clone()
    a, b = zip(*stacks, strict=True)
    _wrapper(idx).add_lora_linear(y, x, a, b, 2.0, QKV)

    deltas = [_reference(x, sa, sb, idx, 2.0) for sa, sb in stacks]
    torch.testing.assert_close(y, y0 + torch.cat(deltas, dim=1), **TOL)
    assert torch.equal(y[idx == -1], y0[idx == -1])


def test_rows_the_mapping_did_not_cover_get_nothing() -> None:
    """Index rows past the step's mapping start at -1, and any stray value masks to zero."""
    n, idx = 6, _indices(6)
    w = _wrapper(idx)
    assert torch.all(w._token_lora_indices[n:] == -1) and torch.all(w._sampler_indices == -1)
    w._token_lora_indices[n : n + 2] = torch.tensor([23148041847, -8055496591365154571])
    a, b = _stack(out=10, seed=3)
    x, y = _x(n + 2), torch.zeros(n + 2, 10)
    w.add_lora_linear(y, x, (a,), (b,), 1.0, (10,))
    torch.testing.assert_close(y[:n], _reference(x[:n], a, b, idx, 1.0), **TOL)
    assert torch.all(y[n:] == 0)


def test_logits_lora_is_skipped_until_a_slot_carries_one() -> None:
    """The LM head's LoRA runs outside the graph; with every slot's B at zero it adds nothing and
    costs nothing, and it comes back as soon as vLLM writes an adapter's weights there."""
    n, idx = 5, _indices(5)
    a, b = _stack(out=10, seed=4, ranks=(0, 0, 0, 0))
    w, x, y0 = _wrapper(idx, sampler=idx), _x(n), _x(n, 10, seed=5)
    y = y0.clone()
    w.add_lora_logits(y, x, a, b, 1.0)
    assert torch.equal(y, y0)
    a_new, b_new = _stack(out=10, seed=6)
    a.copy_(a_new)
    b.copy_(b_new)  # in place, as vLLM loads a slot: the version counter moves
    w.add_lora_logits(y, x, a, b, 1.0)
    torch.testing.assert_close(y, y0 + _reference(x, a, b, idx, 1.0), **TOL)


@pytest.mark.parametrize("add_inputs", [True, False])
def test_shrink_then_expand_like_the_row_parallel_layer(add_inputs: bool) -> None:
    n, idx, offset = 7, _indices(7), 3
    stacks = [_stack(out, seed=10 + i) for i, out in enumerate(QKV)]
    a, b = zip(*stacks, strict=True)
    x, y0 = _x(n), _x(n, offset + sum(QKV) + 2, seed=3)
    w = _wrapper(idx)

    buffer = torch.zeros(len(QKV), n, MAX_RANK, dtype=torch.float32)
    w.add_shrink(buffer, x, a, 0.5)
    for s, sa in enumerate(a):
        torch.testing.assert_close(buffer[s], _per_token(x, sa, idx, 0.5), **TOL)

    y = y0.clone()
    w.add_expand(y, buffer, b, QKV, offset_start=offset, add_inputs=add_inputs)
    expected = y0.clone()
    deltas = torch.cat([_per_token(buffer[s], sb, idx) for s, sb in enumerate(b)], dim=1)
    end = offset + sum(QKV)
    expected[:, offset:end] = (expected[:, offset:end] if add_inputs else 0) + deltas
    torch.testing.assert_close(y, expected, **TOL)


def test_add_lora_embedding_and_logits() -> None:
    n, idx = 6, _indices(6)
    _, b = _stack(out=10, seed=20)
    x_emb, y0 = _x(n, MAX_RANK, seed=4), _x(n, 10, seed=5)
    y = y0.clone()
    _wrapper(idx).add_lora_embedding(y, x_emb, b)
    torch.testing.assert_close(y, y0 + _per_token(x_emb, b, idx), **TOL)

    # logits: the sampler's indices, not the tokens'; y padded wider than the adapter's vocab
    sampler = torch.tensor([3, 0, -1, 1, 2, 0])
    a, b = _stack(out=10, seed=21)
    x, y0 = _x(n), _x(n, 13, seed=6)
    y = y0.clone()
    _wrapper(idx, sampler=sampler).add_lora_logits(y, x, a, b, 1.5)
    expected = y0.clone()
    expected[:, :10] += _reference(x, a, b, sampler, 1.5)
    torch.testing.assert_close(y, expected, **TOL)


# -- 3. under the compiler ----------------------------------------------------------------------


def test_compiled_graph_reads_indices_and_weights_live() -> None:
    stacks = [_stack(out, seed=30 + i) for i, out in enumerate(QKV)]
    a, b = zip(*stacks, strict=True)
    w = _wrapper(_indices(5))

    def fn(y: Tensor, x: Tensor) -> Tensor:
        w.add_lora_linear(y, x, a, b, 1.0, QKV)
        return y

    def check(n: int) -> None:
        x, y0 = _x(n, seed=n), _x(n, sum(QKV), seed=n + 1)
        idx = w._token_lora_indices[:n].clone()
        expected = y0 + torch.cat([_reference(x, sa, sb, idx, 1.0) for sa, sb in stacks], 1)
        torch.testing.assert_close(compiled(y0.clone(), x), expected, **TOL)

    torch._dynamo.reset()
    compiled = torch.compile(fn, dynamic=True, fullgraph=True, backend="inductor")
    check(5)
    # the next step: a new batch mapping and a new adapter in slot 2, both written in place
    w._token_lora_indices[:9] = torch.tensor([2, 2, -1, 0, 3, -1, 1, 2, 0])
    for i, (sa, sb) in enumerate(stacks):
        fresh_a, fresh_b = _stack(QKV[i], seed=40 + i, ranks=(MAX_RANK,))
        sa[2].copy_(fresh_a[0])
        sb[2].copy_(fresh_b[0])
    with torch.compiler.set_stance("fail_on_recompile"):  # the same graph serves it
        check(9)
    torch._dynamo.reset()


def test_vllm_cpu_wrapper_cannot_serve_two_steps_from_one_graph(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """vLLM's own CPU wrapper branches in Python on per-step state (prefill or decode, any
    adapter at all): its graph is bound to the step it was traced on, and the next step needs
    another one (a graph traced once would replay the stale branch). Why vLLM turns compilation
    off for LoRA on CPU."""
    import vllm.lora.ops.torch_ops as package
    import vllm.lora.ops.torch_ops.lora_ops as ops

    if getattr(ops.bgmv_shrink, lora_patch._PATCHED, False):  # as shipped: the -1 fix's
        for name, original in lora_patch.ORIGINALS.items():  # bool(any()) cannot be traced
            for module in (ops, package, punica_cpu):
                if hasattr(module, name):
                    monkeypatch.setattr(module, name, original)
    stacks = [_stack(out, seed=50 + i) for i, out in enumerate(QKV)]
    a, b = zip(*stacks, strict=True)
    v = punica_cpu.PunicaWrapperCPU(max_num_batched_tokens=64, max_batches=8, device="cpu")

    def step(indices: list[int], prefill: bool) -> None:  # what update_metadata does
        v._token_lora_indices[: len(indices)] = torch.tensor(indices)
        v.indices_len[:] = [len(indices)] * 4
        if prefill:
            v._update_prefill_metadata(v.token_lora_indices)
        v.is_prefill = prefill

    def fn(y: Tensor, x: Tensor) -> Tensor:
        v.add_lora_linear(y, x, a, b, 1.0, QKV)
        return y

    torch._dynamo.reset()
    compiled = torch.compile(fn, dynamic=True, fullgraph=True, backend="eager")
    step([0, 0, 1, 1, -1], prefill=True)
    try:
        compiled(torch.zeros(5, sum(QKV)), _x(5))
        step([3, 1, 0, 1, 3], prefill=False)  # the same token count, decoding
        with (
            pytest.raises(RuntimeError, match="recompile"),
            torch.compiler.set_stance("fail_on_recompile"),
        ):
            compiled(torch.zeros(5, sum(QKV)), _x(5))
    finally:
        torch._dynamo.reset()


# -- 4. the platform patch ----------------------------------------------------------------------

CONFIG_SCRIPT = """
import json
from serving import lora_punica
applied = lora_punica.apply()
from tests.workers.platform import tiny_base_model
from vllm.engine.arg_utils import EngineArgs
from vllm.platforms import current_platform
config = EngineArgs(
    model=str(tiny_base_model()), dtype="float32", max_model_len=1024,
    enable_lora=True, max_loras=8, max_lora_rank=16,
).create_engine_config()
print("RESULT " + json.dumps({
    "applied": applied,
    "mode": config.compilation_config.mode.name,
    "wrapper": current_platform.get_punica_wrapper(),
}))
"""


@pytest.mark.parametrize("ops", [None, "vllm"])
def test_apply_keeps_compilation_on_with_lora(ops: str | None) -> None:
    """In a child process, so the class patch stays out of this one."""
    env = {k: v for k, v in os.environ.items() if k != ENV} | ({ENV: ops} if ops else {})
    proc = subprocess.run(
        [sys.executable, "-c", CONFIG_SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    if ops == "vllm":  # turned off: vLLM's own wrapper, and no compilation with LoRA
        assert result == {"applied": False, "mode": "NONE", "wrapper": VLLM_WRAPPER}
    else:
        assert result["applied"] is True and result["wrapper"] == WRAPPER
        assert result["mode"] != "NONE"
