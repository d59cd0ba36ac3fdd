"""What PEFT + transformers answer for a prompt: the reference the engine must equal (fp32)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any


@cache
def _base(base: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(base)


def greedy(base: Path, adapter: Path | None, prompt: str, max_new_tokens: int) -> str:
    """Greedy continuation of `prompt`, decoded like vLLM (special tokens skipped)."""
    import torch
    from peft import PeftModel

    model, tokenizer = _base(base)
    ids = torch.tensor([tokenizer(prompt)["input_ids"]])
    net = PeftModel.from_pretrained(model, adapter) if adapter is not None else model
    try:
        with torch.no_grad():
            out = net.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
            )
    finally:
        if adapter is not None:
            net.unload()  # leave the shared base model as it was
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
