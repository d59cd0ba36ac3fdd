"""The LoRA ranks a base model can be served at, and the one refusal for a rank above them.

A base model's `max_lora_rank` is set by ops at registration (default: the `max_lora_rank`
setting) and is what its engines start with (`--max-lora-rank`). vLLM pads every adapter to
that rank, so it is a property of the base model rather than a platform constant, and it must
be one of vLLM's choices: the registry cannot import vLLM to ask, so
tests/registry/base_models/test_vllm_lora_ranks.py keeps this tuple equal to vLLM's.
"""

from __future__ import annotations

# vllm.config.lora.MaxLoRARanks (vLLM 0.32)
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def check_lora_rank(value: int, what: str = "max_lora_rank") -> int:
    """`value` if vLLM can serve it as `--max-lora-rank`; ValueError (a 422 in schemas)."""
    if value not in VLLM_LORA_RANKS:
        ranks = ", ".join(map(str, VLLM_LORA_RANKS))
        raise ValueError(f"{what} {value} is not a rank vLLM can serve: one of {ranks}")
    return value


def above_base_maximum(what: str, rank: int, base_name: str, max_rank: int) -> str:
    """The 422's message for a rank above what base model `base_name` serves."""
    return (
        f"{what} {rank} is above base model '{base_name}''s maximum LoRA rank {max_rank} (set "
        "when it was registered; ops can register a base model with a higher --max-lora-rank)"
    )
