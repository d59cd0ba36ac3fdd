"""Deterministic sample tenant datasets (chat JSONL) for tests and the demo.

Three tenants that should visibly differ after a short LoRA run on the tiny base model:

* "orders": extract an order from a free-text request as canonical JSON
  (`json.dumps(..., sort_keys=True)`: keys item, name, qty).
* "support": answer a short support question in a fixed pirate voice: every reply starts with
  "Ahoy!" and ends with "Fair winds, matey!".
* "agent": an order desk with tools (`AGENT_TOOLS`: lookup_order, issue_refund, escalate), rows
  in OpenAI's chat fine-tuning format with `tools`, assistant `tool_calls` (arguments as JSON
  strings), `tool` results and text answers; parallel lookups; turns whose answer is text. About
  half the rows end right after an assistant tool call (held-out tool-call scoring).

`shift=True` draws the user messages from a clearly different distribution (long, rambling
prompts about unrelated topics, other items and names) while the answers keep their format, for
drift tests. Rows are unique and the same arguments always give the same rows.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any, Literal

from workers.devmodel.agent_samples import AGENT_SYSTEM, AGENT_TOOLS, agent_row, run_agent_tool

Kind = Literal["orders", "support", "agent"]
Row = dict[str, Any]

__all__ = [
    "AGENT_SYSTEM", "AGENT_TOOLS", "GREETING", "ORDERS_SYSTEM", "SIGN_OFF", "SUPPORT_SYSTEM",
    "run_agent_tool", "sample_rows", "to_jsonl",
]  # fmt: skip

ORDERS_SYSTEM = "Extract the order as JSON."
SUPPORT_SYSTEM = "You are the support assistant for Harbor Goods."
GREETING = "Ahoy!"
SIGN_OFF = "Fair winds, matey!"

_ITEMS = [
    "apples", "bananas", "pears", "oranges", "lemons", "carrots", "potatoes", "onions",
    "tomatoes", "eggs", "cups", "plates", "spoons", "candles", "notebooks", "pencils", "pens",
    "batteries", "towels", "blankets", "pillows", "socks", "shirts", "hats", "gloves", "mugs",
    "chairs", "lamps", "books", "cookies", "muffins", "plants",
]  # fmt: skip
_NAMES = [
    "Alice", "Bob", "Carol", "Dave", "Emma", "Frank", "Grace", "Henry", "Irene", "Jack", "Kara",
    "Liam", "Maya", "Noah", "Olivia", "Paul", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Victor",
    "Wendy", "Yara", "Zoe", "Ben", "Chloe", "Diego", "Ella", "Felix",
]  # fmt: skip
_ORDER_PHRASES = [
    "Please send {qty} {item} to {name}.",
    "Can you ship {qty} {item} to {name}?",
    "{name} needs {qty} {item}.",
    "Order {qty} {item} for {name}, please.",
    "I'd like {qty} {item} delivered to {name}.",
    "Put {name} down for {qty} {item}.",
    "{name} wants {qty} {item}, thanks.",
    "Send {name} {qty} {item} today.",
    "Hi, {qty} {item} for {name} please.",
    "Could {name} get {qty} {item}?",
]

# Shifted orders: other goods, other names, bigger numbers, buried in long unrelated chatter.
_SHIFT_ITEMS = [
    "hinges", "bolts", "roof tiles", "paint cans", "coils of rope", "brass screws", "sandbags",
    "fence posts", "pallets", "drill bits", "copper pipes", "lanterns", "anchors", "tarps",
]  # fmt: skip
_SHIFT_NAMES = [
    "Bartholomew", "Evangeline", "Maximilian", "Guinevere", "Thaddeus", "Philippa",
    "Cornelius", "Rosalind", "Ignatius", "Wilhelmina", "Leopold", "Seraphina",
]  # fmt: skip
_RAMBLES = [
    "I spent the whole weekend reading about the old lighthouses along the northern coast and "
    "how the keepers used to polish the lenses every single night before the storms came in",
    "my cousin has been trying to teach me the rules of cricket for three summers now and I "
    "still cannot tell a googly from a yorker, which the whole family finds very amusing",
    "the astronomy club met on the hill last night and we watched Jupiter rise over the "
    "quarry, although the clouds rolled in before anyone could find the fainter moons",
    "our sourdough starter finally came back to life after the cold snap, and the kitchen has "
    "smelled of warm bread and burnt crusts for most of the week",
    "the parish council argued for two hours about whether the medieval bridge should be "
    "repainted green or left with its weathered grey stone, and nobody changed their mind",
    "I have been sorting through boxes of my grandfather's sea charts, full of pencil notes "
    "about tides, sandbanks and the names of boats that sank long before I was born",
    "the marathon route passes right outside the workshop this year, so the street will be "
    "closed from dawn and the drummers will start practicing at six in the morning",
]
_SHIFT_ORDER_ENDINGS = [
    "Anyway, before I forget, could you arrange for {qty} {item} to go to {name}?",
    "So, the reason I am writing: {name} asked for {qty} {item}, if you can manage it.",
    "In any case, please put through an order of {qty} {item} for {name}.",
    "But back to business, {name} would like {qty} {item} as soon as possible.",
]

# (question variants, answer body); the reply is GREETING + body + SIGN_OFF.
_SUPPORT = [
    (["How do I reset my password?", "I forgot my password.", "My password stopped working."],
     "Ye can reset yer password from Settings, then Security, then Reset."),
    (["Where is my parcel?", "My order has not arrived.", "How do I track my order?"],
     "Yer parcel be at sea; the tracking link in yer email shows where she sails."),
    (["Can I get a refund?", "How do I return an item?", "I want my money back."],
     "Send the goods back within thirty days and yer coins return in five days."),
    (["I was charged twice.", "Why is there a double charge?", "I see two payments."],
     "The second charge be cancelled, so ye pay only once."),
    (["How do I change my address?", "I moved house.", "Can I update my delivery address?"],
     "Change yer address under Profile, and the next parcel sails there."),
    (["How do I cancel my plan?", "I want to stop my subscription.", "Please cancel my plan."],
     "Yer plan be cancelled, and no more coins will be taken."),
    (["The app keeps crashing.", "The app will not open.", "I see an error in the app."],
     "Close the app, restart yer phone, and try again in a few minutes."),
    (["Do you ship abroad?", "Can you deliver overseas?", "Do you send parcels to Canada?"],
     "Aye, we ship to most ports across the seas within ten days."),
    (["When are you open?", "What are your opening hours?", "Is the shop open on Sunday?"],
     "The shop opens at nine bells and closes at six, Sundays at ten."),
    (["I need an invoice.", "Where can I find my receipt?", "Can you send me an invoice?"],
     "Yer invoice waits on the Billing page, ready to download."),
    (["The item arrived broken.", "My order is damaged.", "The box was crushed."],
     "Send us a picture of the damage and a new one sails to ye at once."),
    (["How do I change my email?", "I need to update my email.", "Can I use a new email?"],
     "Change yer email under Profile, then confirm it from yer inbox."),
]  # fmt: skip
_SUPPORT_PREFIXES = ["", "Hi. ", "Hello! ", "Quick question: ", "Good morning. ", "Hey, "]
_SUPPORT_SUFFIXES = ["", " Thanks.", " Thank you!", " Please help.", " Cheers."]
_SUPPORT_CONTEXT = [
    "", " It is order {num}.", " My order number is {num}.", " I ordered on {day}.",
    " This is the second time I ask.", " I am writing from {city}.",
]  # fmt: skip
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_CITIES = ["Lisbon", "Oslo", "Denver", "Austin", "Dublin", "Kyoto", "Perth", "Porto", "Leeds"]


def sample_rows(kind: Kind, n: int, *, seed: int = 0, shift: bool = False) -> list[Row]:
    """`n` unique chat rows of `kind`; the same arguments always give the same rows."""
    makers: dict[str, Callable[[random.Random, bool], Row]] = {
        "orders": _order_row,
        "support": _support_row,
        "agent": agent_row,
    }
    if kind not in makers:
        raise ValueError(f"kind must be 'orders', 'support' or 'agent', not {kind!r}")
    if n < 0:
        raise ValueError("n must not be negative")
    rng = random.Random(f"loraplex-samples:{kind}:{seed}:{int(shift)}")
    rows: list[Row] = []
    seen: set[str] = set()
    attempts = 0
    while len(rows) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise ValueError(f"cannot make {n} unique {kind!r} rows (got {len(rows)})")
        row = makers[kind](rng, shift)
        key = json.dumps(row, sort_keys=True)
        if key not in seen:
            seen.add(key)
            rows.append(row)
    return rows


def to_jsonl(rows: list[Row]) -> bytes:
    """One compact JSON object per line, UTF-8, newline-terminated (the upload format)."""
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows)


def _chat(system: str, user: str, assistant: str) -> Row:
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ]
    }


def _order_row(rng: random.Random, shift: bool) -> Row:
    if shift:
        item, name = rng.choice(_SHIFT_ITEMS), rng.choice(_SHIFT_NAMES)
        qty = rng.randint(20, 500)
        chatter = ", and ".join(rng.sample(_RAMBLES, rng.randint(2, 3)))
        ending = rng.choice(_SHIFT_ORDER_ENDINGS).format(qty=qty, item=item, name=name)
        user = f"Well, {chatter}. {ending}"
    else:
        item, name = rng.choice(_ITEMS), rng.choice(_NAMES)
        qty = rng.randint(2, 12)
        user = rng.choice(_ORDER_PHRASES).format(qty=qty, item=item, name=name)
    answer = json.dumps({"item": item, "qty": qty, "name": name}, sort_keys=True)
    return _chat(ORDERS_SYSTEM, user, answer)


def _support_row(rng: random.Random, shift: bool) -> Row:
    questions, body = rng.choice(_SUPPORT)
    question = rng.choice(questions)
    if shift:
        chatter = ", and ".join(rng.sample(_RAMBLES, rng.randint(2, 3)))
        user = f"Sorry for the long story, but {chatter}. Anyway: {question}"
    else:
        context = rng.choice(_SUPPORT_CONTEXT).format(
            num=rng.randint(1000, 9999), day=rng.choice(_DAYS), city=rng.choice(_CITIES)
        )
        prefix, suffix = rng.choice(_SUPPORT_PREFIXES), rng.choice(_SUPPORT_SUFFIXES)
        user = f"{prefix}{question}{context}{suffix}"
    return _chat(SUPPORT_SYSTEM, user, f"{GREETING} {body} {SIGN_OFF}")
