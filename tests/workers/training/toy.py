"""A tiny byte-level BPE tokenizer with a chat template, a random Llama, and synthetic rows.

Stand-ins for the project's real tiny base model, so these tests depend on nothing else.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIALS = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
CAPITALS = {
    "France": "Paris", "Spain": "Madrid", "Italy": "Rome", "Japan": "Tokyo",
    "Egypt": "Cairo", "Peru": "Lima", "Kenya": "Nairobi", "Chile": "Santiago",
    "Norway": "Oslo", "Cuba": "Havana", "Iran": "Tehran", "Nepal": "Kathmandu",
}  # fmt: skip
QUESTIONS = [
    "What is the capital of {}?", "Capital of {}?", "Name the capital city of {}.",
    "{}: which city is the capital?", "Tell me the capital of {}, please.",
]  # fmt: skip
FILLER = (
    "The quick brown fox jumps over the lazy dog. A tenant uploads a dataset, trains an "
    "adapter and serves it next to many others on one base model. Loss goes down, the "
    "held-out set tells us when to stop, and the best weights are kept. "
)


def capital_rows(n: int, *, seed: int = 0, as_json: bool = False) -> list[dict[str, Any]]:
    """Distinct chat rows asking for a capital: a learnable mapping (answers may be JSON)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        country = rng.choice(sorted(CAPITALS))
        answer = CAPITALS[country]
        if as_json:
            answer = json.dumps({"country": country, "capital": answer})
        messages = [
            {"role": "system", "content": f"Ticket {rng.randrange(10_000)}. Capital only."},
            {"role": "user", "content": rng.choice(QUESTIONS).format(country)},
            {"role": "assistant", "content": answer},
        ]
        rows.append({"messages": messages})
    return rows


def chat_text(rows: Iterable[dict[str, Any]]) -> Iterable[str]:
    for row in rows:
        if "messages" in row:
            yield from (m["content"] for m in row["messages"])
        else:
            yield row["prompt"]
            yield row["completion"]


def build_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts) + [FILLER] * 8, trainer)
    assert [tok.token_to_id(s) for s in SPECIALS] == [0, 1, 2, 3, 4]
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        chat_template=CHAT_TEMPLATE,
        eos_token="<|end|>",
        pad_token="<|pad|>",
        additional_special_tokens=SPECIALS[2:],
    )


def build_model(
    *,
    seed: int = 0,
    vocab_size: int = 512,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 172,
    init_std: float = 0.02,
) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=1024,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=None,
        tie_word_embeddings=False,
        initializer_range=init_std,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = 0
    model.generation_config.eos_token_id = 1
    return model.eval()
