"""Golden eval suites for the sample tenants: what "good" means to each, as checks.

globex's support desk answers in its pirate voice (greeting and sign-off), never as a generic
assistant, and says the right thing (the reference answer, scored by likelihood). acme's order
desk answers with one JSON object in its schema that names the customer. Prompts are drawn with
their own seeds, so they are not the training rows; half of globex's are in the new, rambling
style that its drift retrain learns.
"""

from __future__ import annotations

import json
from typing import Any

from workers.devmodel.samples import GREETING, SIGN_OFF, sample_rows

ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "item": {"type": "string"},
        "name": {"type": "string"},
        "qty": {"type": "integer", "minimum": 1},
    },
    "required": ["item", "name", "qty"],
    "additionalProperties": False,
}


def _prompt(row: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    *prompt, answer = row["messages"]
    return prompt, str(answer["content"])


def support_suite(n: int = 24, *, seed: int = 101, max_loss: float = 1.5) -> list[dict[str, Any]]:
    rows = sample_rows("support", n - n // 2, seed=seed)
    rows += sample_rows("support", n // 2, seed=seed + 1, shift=True)
    out = []
    for i, row in enumerate(rows):
        prompt, answer = _prompt(row)
        out.append(
            {
                "id": f"support-{i:02d}",
                "messages": prompt,
                "checks": [
                    {"type": "contains", "value": GREETING},
                    {"type": "contains", "value": SIGN_OFF},
                    {"type": "not_contains", "value": "As an AI", "ignore_case": True},
                    {"type": "loss", "reference": answer, "max_loss": max_loss},
                ],
            }
        )
    return out


def orders_suite(n: int = 24, *, seed: int = 101) -> list[dict[str, Any]]:
    out = []
    for i, row in enumerate(sample_rows("orders", n, seed=seed)):
        prompt, answer = _prompt(row)
        name = json.loads(answer)["name"]
        out.append(
            {
                "id": f"orders-{i:02d}",
                "messages": prompt,
                "checks": [
                    {"type": "json_schema", "schema": ORDER_SCHEMA},
                    {"type": "contains", "value": f'"name": "{name}"'},
                ],
            }
        )
    return out
