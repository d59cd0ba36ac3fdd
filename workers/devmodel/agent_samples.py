"""The "agent" sample tenant: an order desk that calls tools (re-exported by `samples`).

Rows are OpenAI chat fine-tuning rows with `tools`: a user asks, the assistant calls
`lookup_order` / `issue_refund` / `escalate` (arguments as JSON strings, ids `call_1`, ...), a
`tool` message answers each call (`tool_call_id`), the assistant answers in text. Order ids,
amounts and names vary, so an adapter must copy them from the conversation. About half the rows
end right after an assistant tool call; the rest end in text (a tool result summed up, a
greeting, a policy question). `run_agent_tool` gives the results the rows (and the demo) use.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

Row = dict[str, Any]

AGENT_SYSTEM = "You are the order desk of Harbor Goods. Use the tools to help the customer."
AGENT_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Find an order by its id",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "issue_refund",
            "description": "Refund an amount in dollars on an order",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
                "required": ["order_id", "amount"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "escalate",
            "description": "Hand the case to a human",
            "parameters": {
                "type": "object",
                "properties": {"reason": {"type": "string"}},
                "required": ["reason"],
            },
        },
    },
]

_STATUSES = ["shipped", "packed", "delivered", "delayed", "processing"]
_LOOKUP = [
    "Where is my order {id}?",
    "Can you check order {id}?",
    "What is the status of {id}?",
    "Hi, any news on order {id}?",
    "Has {id} shipped yet?",
    "Please look up order {id} for me.",
]
_LOOKUP_TWO = [
    "Can you check orders {id} and {id2}?",
    "Where are my orders {id} and {id2}?",
    "Please look up {id} and also {id2}.",
    "What is the status of {id} and {id2}?",
]
_REFUND = [
    "Please refund {amount_text} on order {id}.",
    "I was overcharged {amount_text} on {id}, can I get it back?",
    "Refund {amount_text} for order {id}, the item was broken.",
    "Order {id} arrived damaged. I want {amount_text} back.",
    "Could you return {amount_text} to me for {id}?",
]
_REFUND_FULL = [
    "Refund order {id} in full, please.",
    "I want all my money back for order {id}.",
    "Cancel {id} and refund the whole order.",
]
# (user phrasing, reason): the reason names the topic and copies the order id
_ESCALATE = [
    ("I want to speak to a manager about order {id}.", "manager requested for order {id}"),
    ("This is the third time order {id} went missing!", "repeated loss of order {id}"),
    ("My lawyer will hear about order {id}.", "legal threat about order {id}"),
    ("Order {id} hurt my child, this is dangerous.", "safety issue with order {id}"),
]
_TEXT = [
    (["Hi!", "Hello there.", "Good morning!", "Hey."],
     "Hello! I can look up, refund or escalate your orders. What is your order id?"),
    (["What is your refund policy?", "How long do refunds take?", "Do you give refunds?"],
     "Refunds go back to your card within five days of approval."),
    (["I want a refund.", "Where is my order?", "Can you check my order?"],
     "Sure, what is the order id? It looks like A-12345."),
    (["Thanks, that is all.", "Thank you!", "Great, thanks."],
     "You are welcome! Have a good day."),
    (["What are your opening hours?", "When is the desk open?"],
     "The order desk is open every day from nine to six."),
]  # fmt: skip
_SHIFT_CHATTER = [
    "I have been on the road all week visiting my aunt in the mountains and only now found "
    "the time to sort out my mail",
    "the neighbours are renovating their kitchen again, so forgive me if this message rambles "
    "a bit, it has been loud since dawn",
    "our book club just finished a very long novel about whalers and I am still thinking "
    "about the ending more than I should",
    "the train was cancelled twice this morning and I wrote this while waiting on a cold "
    "platform with a terrible coffee",
]


def _order_id(rng: random.Random, shift: bool) -> str:
    letters = "ABCDEFGHKMNPRSTWXZ"
    prefix = "".join(rng.sample(letters, 2)) if shift else rng.choice(letters)
    return f"{prefix}-{rng.randint(10000, 99999)}"


def _amount(rng: random.Random) -> tuple[float | int, str]:
    """(JSON value, how the customer writes it): whole dollars or cents ending in non-zero."""
    dollars = rng.randint(3, 400)
    cents = rng.choice([0, 0, 25, 49, 75, 95, 99])
    if not cents:
        return dollars, f"${dollars}"
    value = dollars + cents / 100
    return value, f"${value:.2f}"


def run_agent_tool(name: str, args: dict[str, Any]) -> str:
    """The order desk's tools, faked deterministically: the JSON text a `tool` message carries."""
    order_id = str(args.get("order_id", ""))
    digest = int(hashlib.sha256(f"{name}:{order_id}".encode()).hexdigest()[:8], 16)
    if name == "lookup_order":
        cents = (0, 25, 75, 99)[digest // 300 % 4]
        total = 5 + digest % 300 + cents / 100 if cents else 5 + digest % 300
        status = _STATUSES[digest % len(_STATUSES)]
        return json.dumps({"order_id": order_id, "status": status, "total": total})
    if name == "issue_refund":
        refund = f"R-{digest % 90000 + 10000}"
        return json.dumps({"refund_id": refund, "order_id": order_id, "amount": args.get("amount")})
    if name == "escalate":
        return json.dumps({"ticket": f"T-{digest % 9000 + 1000}", "queue": "human"})
    return json.dumps({"error": f"unknown tool {name}"})


def _call(index: int, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"call_{index}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args)},
    }


def _calls(calls: list[dict[str, Any]]) -> dict[str, Any]:
    return {"role": "assistant", "tool_calls": calls}


def _results(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "role": "tool",
            "tool_call_id": c["id"],
            "content": run_agent_tool(
                c["function"]["name"], json.loads(c["function"]["arguments"])
            ),
        }
        for c in calls
    ]


def _summary(call: dict[str, Any]) -> str:
    """The assistant's text answer to one call's result (values copied from the result)."""
    result = json.loads(
        run_agent_tool(call["function"]["name"], json.loads(call["function"]["arguments"]))
    )
    name = call["function"]["name"]
    if name == "lookup_order":
        return f"Order {result['order_id']} is {result['status']}, total ${result['total']}."
    if name == "issue_refund":
        return (
            f"I refunded ${result['amount']} on order {result['order_id']} "
            f"(refund {result['refund_id']})."
        )
    return f"A colleague will take over; your ticket is {result['ticket']}."


def agent_row(rng: random.Random, shift: bool) -> Row:
    """One trajectory; `shift` buries the request in chatter and uses two-letter id prefixes."""
    oid = _order_id(rng, shift)
    kind = rng.random()
    user: str
    calls: list[dict[str, Any]] = []
    follow: list[dict[str, Any]] = []  # a second round of calls after the first results
    text: str | None = None
    if kind < 0.3:
        user = rng.choice(_LOOKUP).format(id=oid)
        calls = [_call(1, "lookup_order", {"order_id": oid})]
    elif kind < 0.45:
        oid2 = _order_id(rng, shift)
        user = rng.choice(_LOOKUP_TWO).format(id=oid, id2=oid2)
        calls = [
            _call(1, "lookup_order", {"order_id": oid}),
            _call(2, "lookup_order", {"order_id": oid2}),
        ]
    elif kind < 0.65:
        amount, amount_text = _amount(rng)
        user = rng.choice(_REFUND).format(id=oid, amount_text=amount_text)
        calls = [_call(1, "issue_refund", {"order_id": oid, "amount": amount})]
    elif kind < 0.75:  # look the total up first, then refund exactly that
        user = rng.choice(_REFUND_FULL).format(id=oid)
        calls = [_call(1, "lookup_order", {"order_id": oid})]
        total = json.loads(run_agent_tool("lookup_order", {"order_id": oid}))["total"]
        follow = [_call(2, "issue_refund", {"order_id": oid, "amount": total})]
    elif kind < 0.85:
        phrase, reason = rng.choice(_ESCALATE)
        user = phrase.format(id=oid)
        calls = [_call(1, "escalate", {"reason": reason.format(id=oid)})]
    else:
        questions, text = rng.choice(_TEXT)
        user = rng.choice(questions)
    if shift:
        user = f"Hello, {rng.choice(_SHIFT_CHATTER)}. Anyway: {user}"
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": AGENT_SYSTEM},
        {"role": "user", "content": user},
    ]
    if text is not None:
        messages.append({"role": "assistant", "content": text})
    elif rng.random() < 0.5:  # the row ends right after the (first or second round of) calls
        messages.append(_calls(calls))
        if follow and rng.random() < 0.6:
            messages += [*_results(calls), _calls(follow)]
    else:
        messages += [_calls(calls), *_results(calls)]
        if follow:
            messages += [_calls(follow), *_results(follow)]
            calls = follow
        answer = " ".join(_summary(c) for c in calls)
        messages.append({"role": "assistant", "content": answer})
    return {"messages": messages, "tools": AGENT_TOOLS}
