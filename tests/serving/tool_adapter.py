"""An order-desk adapter that calls tools, and what PEFT + transformers make of a chat request.

The LoRA is over-fitted in process on a handful of tool-use rows (a single call, a parallel call
of two, a follow-up that answers a tool result in text), rendered by the tiny base
model's own chat template with tool-call arguments as objects, as vLLM renders them. Loss is on
the assistant turns only (their text, calls and `<|end|>`). `parse` mirrors vLLM's hermes
parser, so the engine's `tool_calls` and the reference's can be compared as JSON values.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from tests.serving.stack import TARGETS

Message = dict[str, Any]
RANK = 64  # the most the registry accepts by default: the over-fit needs the capacity


def _tool(name: str, description: str, **props: str) -> dict[str, Any]:
    """Short schemas: the tools are rendered into every prompt, and the fixture trains on CPU.
    A description is given: vLLM renders a missing one as `"description": null`."""
    properties = {k: {"type": t} for k, t in props.items()}
    parameters = {"type": "object", "properties": properties, "required": list(props)}
    function = {"name": name, "description": description, "parameters": parameters}
    return {"type": "function", "function": function}


TOOLS = [
    _tool("lookup_order", "Find an order", order_id="string"),
    _tool("issue_refund", "Refund an order", order_id="string"),
    _tool("escalate", "Hand over to a person", order_id="string"),
]


def call(call_id: str, name: str, **arguments: Any) -> dict[str, Any]:
    """An assistant tool call as the template receives it from vLLM (arguments as an object)."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


SINGLE: list[Message] = [{"role": "user", "content": "Where is order A17?"}]
SINGLE_CALLS = [call("call_1", "lookup_order", order_id="A17")]
PARALLEL: list[Message] = [{"role": "user", "content": "Refund and escalate order B22."}]
PARALLEL_CALLS = [
    call("call_2", "issue_refund", order_id="B22"),
    call("call_3", "escalate", order_id="B22"),
]
FOLLOW_UP: list[Message] = [
    *SINGLE,
    {"role": "assistant", "content": None, "tool_calls": SINGLE_CALLS},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'},
]
FOLLOW_UP_ANSWER = "Order A17 has shipped."
ROWS: list[list[Message]] = [
    [*SINGLE, {"role": "assistant", "content": None, "tool_calls": SINGLE_CALLS}],
    [*PARALLEL, {"role": "assistant", "content": None, "tool_calls": PARALLEL_CALLS}],
    [*FOLLOW_UP, {"role": "assistant", "content": FOLLOW_UP_ANSWER}],
]


def render(tokenizer: Any, messages: list[Message], *, prompt: bool = False) -> str:
    text = tokenizer.apply_chat_template(
        messages, tools=TOOLS, tokenize=False, add_generation_prompt=prompt
    )
    return str(text)


def encode_row(tokenizer: Any, messages: list[Message]) -> tuple[list[int], list[int]]:
    """Token ids and labels (-100 off the assistant turns). Each piece is tokenized on its own,
    so the ids before an assistant turn are exactly the engine's prompt ids for that turn."""
    full = render(tokenizer, messages)
    ids: list[int] = []
    labels: list[int] = []
    done = 0
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(render(tokenizer, messages[:i], prompt=True))
        end = len(render(tokenizer, messages[: i + 1]))
        for text, learn in ((full[done:start], False), (full[start:end], True)):
            piece = tokenizer(text, add_special_tokens=False)["input_ids"]
            ids += piece
            labels += piece if learn else [-100] * len(piece)
        done = end
    return ids, labels


def trained(base: Path) -> Path:
    """`train` once per content of this file and base model, reused across local runs."""
    key = hashlib.sha256(Path(__file__).read_bytes() + base.name.encode()).hexdigest()[:16]
    out = base.parent / f"tool-adapter-{key}"
    if not (out / "adapter_model.safetensors").exists():
        partial = out.with_name(out.name + f".tmp{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        train(base, partial)
        shutil.rmtree(out, ignore_errors=True)
        partial.rename(out)
    return out


def train(base: Path, out: Path, *, steps: int = 400, lr: float = 5e-4, seed: int = 0) -> Path:
    """Over-fit a LoRA on ROWS (full batch, AdamW, until the loss is near 0 or after `steps`)
    and save it in PEFT layout. The test base model is barely pre-trained, so this is close to
    learning the rows from scratch: ~0.3 s a step on one CPU thread.

    The rows share their long prefix (the tools block): each step computes its keys and values
    once, without gradients (the LoRA's current weights apply to it, as at inference), and
    trains on the rows' suffixes only: about 4x less compute than whole rows on CPU."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: several are >5x slower on a busy 2-core machine
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(
        r=RANK,
        lora_alpha=RANK,
        target_modules=list(TARGETS),
        task_type="CAUSAL_LM",
    )
    net = get_peft_model(model, config)
    rows = [encode_row(tokenizer, r) for r in ROWS]
    shared = len(os.path.commonprefix([ids for ids, _ in rows])) - 1
    if any(set(lab[: shared + 1]) != {-100} for _, lab in rows):
        raise ValueError("the shared prefix must hold no labelled token")
    prefix = torch.tensor([rows[0][0][:shared]])
    tails = [(ids[shared:], lab[shared:]) for ids, lab in rows]
    width = max(len(ids) for ids, _ in tails)
    pad = tokenizer.pad_token_id or 0
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in tails])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in tails])
    mask = torch.tensor([[1] * (shared + len(ids)) + [0] * (width - len(ids)) for ids, _ in tails])
    # LoRA+: B learns faster than A (Hayou et al. 2024); the over-fit needs it on CPU time
    ratio = 32
    groups = [
        {"params": [p for n, p in net.named_parameters() if "lora_A" in n], "lr": lr},
        {"params": [p for n, p in net.named_parameters() if "lora_B" in n], "lr": lr * ratio},
    ]
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
    net.train()
    for _ in range(steps):
        with torch.no_grad():
            cache = net(input_ids=prefix, use_cache=True).past_key_values
        cache.batch_repeat_interleave(len(rows))
        loss = net(
            input_ids=input_ids, attention_mask=mask, past_key_values=cache, labels=labels
        ).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        if loss.item() < 0.05:
            break
    torch.set_num_threads(threads)
    net.save_pretrained(out)
    config_file = out / "adapter_config.json"  # name the registered base model, as a user would
    config_json = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config_json, "base_model_name_or_path": "tiny"}))
    (out / "final_loss.txt").write_text(f"{loss.item():.4f}")
    return out


def greedy_chat(base: Path, adapter: Path, messages: list[Message], max_new_tokens: int) -> str:
    """What PEFT + transformers generate greedily for the engine's rendering of a chat request,
    decoded as vLLM decodes with tools on (special tokens kept), up to `<|end|>`."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    net = PeftModel.from_pretrained(model, adapter).eval()
    prompt = tokenizer(render(tokenizer, messages, prompt=True), add_special_tokens=False)
    ids = torch.tensor([prompt["input_ids"]])
    with torch.no_grad():
        out = net.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
        )
    new = out[0, ids.shape[1] :].tolist()
    if tokenizer.eos_token_id in new:
        new = new[: new.index(tokenizer.eos_token_id)]
    return str(tokenizer.decode(new, skip_special_tokens=False))


TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


def parse(text: str) -> tuple[str | None, list[tuple[str, Any]]]:
    """(content, [(name, arguments)]) as vLLM's hermes parser reads a model's text: the text
    before the first `<tool_call>` is the content, each block is JSON with name and arguments;
    a block that does not parse leaves the whole text as content, with no calls."""
    if "<tool_call>" not in text:
        return text, []
    try:
        calls = [json.loads(block) for block in TOOL_CALL.findall(text)]
        found = [(c["name"], c["arguments"]) for c in calls]
    except (ValueError, KeyError, TypeError):
        return text, []
    content = text[: text.index("<tool_call>")]
    return content or None, found


def expected(calls: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(c["function"]["name"], c["function"]["arguments"]) for c in calls]
