"""The registry's list of servable LoRA ranks is vLLM's: it cannot import vLLM to ask."""

from __future__ import annotations

from typing import get_args

import pytest

from registry.lora_ranks import VLLM_LORA_RANKS, check_lora_rank


def test_the_ranks_are_vllms() -> None:
    from vllm.config.lora import MaxLoRARanks

    assert get_args(MaxLoRARanks) == VLLM_LORA_RANKS


def test_check_lora_rank() -> None:
    assert [check_lora_rank(r) for r in VLLM_LORA_RANKS] == list(VLLM_LORA_RANKS)
    with pytest.raises(
        ValueError, match="max_lora_rank 48 is not a rank vLLM can serve: one of 1, 8"
    ):
        check_lora_rank(48)
