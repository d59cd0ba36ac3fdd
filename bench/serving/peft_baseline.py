"""The baseline: transformers + PEFT in this process, one adapter active at a time."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.serving.common import NEW_TOKENS


class Peft:
    """transformers + PEFT in this process, fp32, with the 8 adapters loaded by name."""

    def __init__(self, base: Path, folders: list[Path]) -> None:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, GenerationConfig

        self.torch = torch
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        # No EOS at all: fixed-length output with the same semantics as vLLM's ignore_eos
        # (min_new_tokens would mask EOS out of the argmax, and this model often picks it).
        model.generation_config.eos_token_id = None
        self.model = PeftModel.from_pretrained(model, folders[0], adapter_name="a0").eval()
        for k, folder in enumerate(folders[1:], 1):
            self.model.load_adapter(folder, adapter_name=f"a{k}")
        self.config = GenerationConfig(
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=None,
        )

    def _generate(self, rows: list[list[int]]) -> list[list[int]]:
        width = max(map(len, rows))  # left padding
        ids = self.torch.tensor([[0] * (width - len(r)) + r for r in rows])
        mask = self.torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        with self.torch.inference_mode():
            out = self.model.generate(
                input_ids=ids, attention_mask=mask, generation_config=self.config
            )
        return out[:, width:].tolist()

    def run(
        self, prompt_ids: list[list[int]], adapters: list[int], group: bool, threads: int
    ) -> dict[str, Any]:
        """group=False: set_adapter + generate per prompt; True: one generate per adapter."""
        self.torch.set_num_threads(threads)
        t0, outs = time.perf_counter(), [list[int]() for _ in prompt_ids]
        order = sorted(set(adapters)) if group else list(range(len(prompt_ids)))
        for key in order:
            idx = [i for i, a in enumerate(adapters) if a == key] if group else [key]
            self.model.set_adapter(f"a{adapters[idx[0]]}")
            for i, generated in zip(idx, self._generate([prompt_ids[i] for i in idx]), strict=True):
                outs[i] = generated
        seconds = time.perf_counter() - t0
        tokens = sum(map(len, outs))
        assert tokens == NEW_TOKENS * len(prompt_ids), tokens
        return {"seconds": seconds, "tok_s": tokens / seconds, "token_ids": outs}
