"""Build a tiny Llama-architecture base model from the bundled corpus, offline and reproducibly.

The model exists so tests and the demo can train and serve real LoRA adapters without a model
hub: a byte-level BPE tokenizer and a 4-layer Llama briefly pre-trained on `corpus.txt` (plain
and rendered through the chat template) mixed with synthetic copy-heavy text (`pretrain_text`:
values restated in other schemas, extraction chats, tool-calling chats), so that a LoRA can
teach it a tenant's schema and it copies the values from the prompt. Saved in the standard
Hugging Face layout (`config.json`, `model.safetensors`, tokenizer files) that transformers and
vLLM load, plus `loraplex-build.json` (options and fingerprint).

Same options on the same machine (same torch thread count and build) give a byte-identical
`model.safetensors`: the seed fixes the initial weights, the data order is a seeded permutation,
and there is no dropout. The caller's global torch RNG state is left as it was.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from workers.devmodel import pretrain_text, template
from workers.devmodel.folders import make_readable, quiet_progress_bars, replace_folder
from workers.devmodel.template import CHAT_TEMPLATE, render_chat

CORPUS = Path(__file__).with_name("corpus.txt")
BUILD_INFO = "loraplex-build.json"
TOKENIZER_DOCS = 3000  # synthetic documents added to the corpus to train the tokenizer on
SPECIAL_TOKENS = [
    "<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>",
    "<tool_call>", "</tool_call>",
]  # ids 0..7, in this order  # fmt: skip
PAD_ID, END_ID = 0, 1
SYSTEM_PROMPT = "You are a helpful assistant."
# Corpus lines that already hold a question and its answer become one chat turn each.
_QA_MARKERS = (("Q: ", " A: "), ("Customer: ", " Agent: "), ("Question: ", " Answer: "))

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class BuildOptions:
    vocab_size: int = 4096  # BPE target; also the model's embedding rows
    hidden_size: int = 256
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    intermediate_size: int = 688
    max_position_embeddings: int = 1024
    pretrain_steps: int = 1200
    seq_length: int = 256  # a tool-calling chat is ~300 tokens; most fit in one or two rows
    batch_size: int = 8
    seed: int = 0
    learning_rate: float = 3e-3
    # Share of each batch's rows taken from the synthetic copy-heavy text (`pretrain_text`),
    # fresh rows every step; the rest come from the corpus (plain and as chat turns).
    synthetic_share: float = 0.875
    # "auto": bf16 autocast where the CPU has native bf16 matmuls (~1.5x faster), else fp32.
    # Weights stay fp32 either way; only the matmuls of the pre-training steps change.
    mixed_precision: Literal["auto", "bf16", "fp32"] = "auto"

    def __post_init__(self) -> None:
        if self.vocab_size <= len(SPECIAL_TOKENS) + 256:
            raise ValueError(
                f"vocab_size must exceed {len(SPECIAL_TOKENS) + 256} (bytes + specials)"
            )
        if self.hidden_size % self.heads or self.heads % self.kv_heads:
            raise ValueError("hidden_size must divide by heads, and heads by kv_heads")
        if self.seq_length > self.max_position_embeddings:
            raise ValueError("seq_length must not exceed max_position_embeddings")
        if min(self.layers, self.seq_length, self.batch_size) < 1 or self.pretrain_steps < 0:
            raise ValueError("layers, seq_length and batch_size must be positive; steps >= 0")
        if not 0.0 <= self.synthetic_share <= 1.0:
            raise ValueError("synthetic_share must be between 0 and 1")
        if self.mixed_precision not in ("auto", "bf16", "fp32"):
            raise ValueError("mixed_precision must be 'auto', 'bf16' or 'fp32'")

    def use_bf16(self) -> bool:
        if self.mixed_precision != "auto":
            return self.mixed_precision == "bf16"
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False


def build_base_model(
    path: Path,
    options: BuildOptions = BuildOptions(),  # noqa: B008 - frozen, so sharing it is safe
    *,
    force: bool = False,
    on_progress: Progress | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Build into a temporary sibling folder, then move it to `path` (a crash leaves no half model).

    Refuses a non-empty `path` unless `force`, in which case it is replaced only once the new
    model is complete. `loraplex-build.json` in the folder records the options and
    `build_fingerprint(options)`, so a cached model can be checked for staleness. `device`
    (e.g. "cuda") only speeds up experiments: byte-identical output holds per device.
    """
    path = Path(path)
    report: Progress = on_progress or (lambda stage, done, total: None)
    if path.exists() and not force and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(
            f"{path} already exists and is not empty: choose another path or pass force=True "
            "to replace it"
        )
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.building-", dir=path.parent))
    try:
        report("tokenizer", 0, 1)
        text = CORPUS.read_text(encoding="utf-8")
        tokenizer = train_tokenizer(tokenizer_text(), options.vocab_size)
        hf_tokenizer = wrap_tokenizer(tokenizer, options.max_position_embeddings)
        hf_tokenizer.save_pretrained(tmp, save_jinja_files=False)
        _portable_tokenizer_config(tmp / "tokenizer_config.json")
        report("tokenizer", 1, 1)

        chunks = _training_chunks(tokenizer, text, options.seq_length)
        n_synthetic = round(options.batch_size * options.synthetic_share)
        fresh = _synthetic_chunks(
            tokenizer, options.seq_length, n_synthetic * options.pretrain_steps
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(options.seed)
            model = LlamaForCausalLM(_config(options))
            loss = _pretrain(model, chunks, fresh, options, report, torch.device(device))

        report("save", 0, 1)
        with quiet_progress_bars():
            model.save_pretrained(tmp, safe_serialization=True)
        info = {"fingerprint": build_fingerprint(options), "options": asdict(options)}
        (tmp / BUILD_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        make_readable(tmp)
        replace_folder(tmp, path)
        report("save", 1, 1)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "path": str(path),
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": model.config.vocab_size,
        "tokenizer_vocab_size": tokenizer.get_vocab_size(),
        "final_loss": loss,
        "bf16_autocast": options.use_bf16(),
        "seconds": round(time.perf_counter() - started, 2),
        "fingerprint": build_fingerprint(options),
        "options": asdict(options),
    }


def build_fingerprint(options: BuildOptions) -> str:
    """sha256 of what decides the built bytes: the source of this builder, the template and the
    synthetic text generator, the corpus and the options. A cached model with another
    fingerprint is stale."""
    digest = hashlib.sha256()
    for file in (Path(__file__), CORPUS, Path(pretrain_text.__file__), Path(template.__file__)):
        digest.update(file.read_bytes())
    digest.update(json.dumps(asdict(options), sort_keys=True).encode())
    return digest.hexdigest()


def tokenizer_text() -> str:
    """What the tokenizer is trained on: the corpus, then the first synthetic documents."""
    synthetic = itertools.islice(pretrain_text.documents(_render, seed=0), TOKENIZER_DOCS)
    return CORPUS.read_text(encoding="utf-8") + "\n" + "\n".join(synthetic)


def _render(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    return render_chat(messages, tools)


def train_tokenizer(text: str, vocab_size: int) -> Tokenizer:
    """Byte-level BPE; the special tokens take ids 0..7 and nothing is added on encode."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(text.splitlines(keepends=True), trainer)
    for i, token in enumerate(SPECIAL_TOKENS):
        if tokenizer.token_to_id(token) != i:
            raise RuntimeError(f"special token {token} did not get id {i}")
    return tokenizer


def wrap_tokenizer(tokenizer: Tokenizer, max_length: int) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=SPECIAL_TOKENS[PAD_ID],
        eos_token=SPECIAL_TOKENS[END_ID],
        additional_special_tokens=SPECIAL_TOKENS[2:],
        chat_template=CHAT_TEMPLATE,
        model_max_length=max_length,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )


def chat_examples(lines: list[str]) -> Iterator[list[dict[str, str]]]:
    """Q/A corpus lines become one user/assistant turn; other lines pair up as turns."""
    pending: str | None = None
    for i, line in enumerate(lines):
        system = [{"role": "system", "content": SYSTEM_PROMPT}] if i % 3 == 0 else []
        for q_mark, a_mark in _QA_MARKERS:
            if line.startswith(q_mark) and a_mark in line:
                q, a = line[len(q_mark) :].split(a_mark, 1)
                yield [*system, {"role": "user", "content": q}, {"role": "assistant", "content": a}]
                break
        else:
            if pending is None:
                pending = line
            else:
                yield [
                    *system,
                    {"role": "user", "content": pending},
                    {"role": "assistant", "content": line},
                ]
                pending = None


def _config(options: BuildOptions) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=options.vocab_size,
        hidden_size=options.hidden_size,
        intermediate_size=options.intermediate_size,
        num_hidden_layers=options.layers,
        num_attention_heads=options.heads,
        num_key_value_heads=options.kv_heads,
        max_position_embeddings=options.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=END_ID,
        pad_token_id=PAD_ID,
        attention_dropout=0.0,
        dtype="float32",
    )


def _training_chunks(tokenizer: Tokenizer, text: str, seq_length: int) -> torch.Tensor:
    """Packed rows of `seq_length` tokens: the plain corpus, then the corpus as chat turns."""
    lines = [line for line in text.splitlines() if line.strip()]
    plain = [t for enc in tokenizer.encode_batch(lines) for t in (*enc.ids, END_ID)]
    rendered = [render_chat(m) for m in chat_examples(lines)]
    chat = [t for enc in tokenizer.encode_batch(rendered) for t in enc.ids]
    rows: list[torch.Tensor] = []
    for stream in (plain, chat):
        ids = torch.tensor(stream, dtype=torch.long)
        usable = len(ids) // seq_length * seq_length
        rows.append(ids[:usable].view(-1, seq_length))
    return torch.cat(rows)


def _synthetic_chunks(tokenizer: Tokenizer, seq_length: int, n_rows: int) -> torch.Tensor:
    """`n_rows` packed rows of the synthetic documents, in the generator's order."""
    need = n_rows * seq_length
    ids: list[int] = []
    docs = pretrain_text.documents(_render, seed=0)
    while len(ids) < need:
        batch = list(itertools.islice(docs, 2000))
        ids += [t for enc in tokenizer.encode_batch(batch) for t in (*enc.ids, END_ID)]
    return torch.tensor(ids[:need], dtype=torch.long).view(n_rows, seq_length)


def _pretrain(
    model: LlamaForCausalLM,
    chunks: torch.Tensor,
    fresh: torch.Tensor,
    options: BuildOptions,
    report: Progress,
    device: torch.device,
) -> float | None:
    """AdamW with warmup and cosine decay. Each batch: the next rows of `fresh` (synthetic text,
    each row seen once), the rest from a seeded, epoch-wise permutation of the corpus `chunks`."""
    steps = options.pretrain_steps
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=options.learning_rate, betas=(0.9, 0.95), weight_decay=0.01
    )
    warmup = max(1, steps // 10)

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.45 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    generator = torch.Generator().manual_seed(options.seed)
    order = torch.empty(0, dtype=torch.long)
    loss_value: float | None = None
    n_fresh = len(fresh) // steps if steps else 0
    n_corpus = options.batch_size - n_fresh
    torch.nn.Module.to(model, device)  # (transformers' stub types `.to` oddly)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=options.use_bf16())
    model.train()
    report("pretrain", 0, steps)
    for step in range(steps):
        while len(order) < n_corpus:
            order = torch.cat([order, torch.randperm(len(chunks), generator=generator)])
        picked, order = chunks[order[:n_corpus]], order[n_corpus:]
        batch = torch.cat([picked, fresh[step * n_fresh : (step + 1) * n_fresh]]).to(device)
        with autocast:
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = float(loss.detach())
        report("pretrain", step + 1, steps)
    torch.nn.Module.to(model, "cpu")
    model.eval()
    return loss_value


def _portable_tokenizer_config(file: Path) -> None:
    """Write the tokenizer config in the form transformers 4.x reads too (vLLM may run on 4.x).

    transformers 5 saves `tokenizer_class: TokenizersBackend` and a list-valued
    `extra_special_tokens`, on which 4.x fails ("'list' object has no attribute 'keys'");
    5.x still reads the 4.x names and maps them back.
    """
    config = json.loads(file.read_text(encoding="utf-8"))
    config.pop("backend", None)
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config["additional_special_tokens"] = config.pop("extra_special_tokens", SPECIAL_TOKENS[2:])
    file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
