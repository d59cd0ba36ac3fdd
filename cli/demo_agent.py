"""The demo's agent tenant: an order desk whose adapter learns to call the tenant's tools.

After training, the held-out tool-call scores of the adapter and of the base model side by side;
then one live round through the gateway with the official `openai` client: the adapter calls a
tool, the demo runs it, sends the result back, and the adapter answers in text.
"""

from __future__ import annotations

import json
from typing import Any, cast

import httpx
from rich.console import Console
from rich.table import Table

from cli.client import Api
from workers.devmodel.samples import AGENT_SYSTEM, AGENT_TOOLS, run_agent_tool

console = Console()
SLUG, ADAPTER = "initech", "desk"
TOOL_METRICS = ("tool_name_accuracy", "tool_args_valid", "tool_call_exact", "no_call_accuracy")
QUESTION = "Where is my order A-40213?"


def scores(api: Api, version: int) -> None:
    """The held-out scores of `version` and of the base model, one row per metric."""
    evals = api.get(f"/v1/tenants/{SLUG}/adapters/{ADAPTER}/versions/{version}/evals")
    by_subject = {
        e["subject"]: e["metrics"] for e in evals if e["subject"] in ("version", "base_model")
    }
    adapter, base = by_subject.get("version", {}), by_subject.get("base_model", {})
    table = Table("held-out metric", "base model", f"{ADAPTER}@v{version}", title="tool calling")
    for metric in (*TOOL_METRICS, "exact_match", "eval_loss"):
        if metric in adapter or metric in base:
            table.add_row(metric, _fmt(base.get(metric)), _fmt(adapter.get(metric)))
    console.print(table)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def live_round(gateway: str, api: Api) -> None:
    """Ask, run the tool the adapter called, send its result back, print the answer."""
    import openai  # the official client, as a tenant's code would use it

    token = api._headers()["Authorization"].removeprefix("Bearer ")
    # Typed loosely: the client's own types want typed dicts for every message and tool.
    client: Any = openai.OpenAI(
        base_url=f"{gateway}/v1",
        api_key=token,
        max_retries=0,
        http_client=cast(Any, httpx.Client(trust_env=False, timeout=120)),
    )
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": AGENT_SYSTEM},
        {"role": "user", "content": QUESTION},
    ]
    console.print(
        f"[bold]{SLUG}[/bold] asks {ADAPTER} (tools: "
        f"{', '.join(t['function']['name'] for t in AGENT_TOOLS)}): {QUESTION!r}"
    )
    first = client.chat.completions.create(
        model=ADAPTER, messages=messages, tools=AGENT_TOOLS, temperature=0, max_tokens=96
    )
    message = first.choices[0].message
    if not message.tool_calls:
        console.print(
            f"  [yellow]the adapter answered without a tool call:[/yellow] {message.content!r}"
        )
        return
    messages.append(message.model_dump(exclude_none=True))
    for call in message.tool_calls:
        args = json.loads(call.function.arguments)
        console.print(
            f"  [green]{ADAPTER}[/green] calls [bold]{call.function.name}[/bold]({args}) "
            f"(finish_reason {first.choices[0].finish_reason})"
        )
        result = run_agent_tool(call.function.name, args)
        console.print(f"  the demo runs it → {result}")
        messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    second = client.chat.completions.create(
        model=ADAPTER, messages=messages, tools=AGENT_TOOLS, temperature=0, max_tokens=96
    )
    reply = second.choices[0].message
    if reply.tool_calls:
        console.print(f"  [yellow]{ADAPTER} calls again:[/yellow] {reply.tool_calls[0].function}")
    else:
        console.print(f"  [green]{ADAPTER}[/green] answers: {reply.content!r}")
