"""The tiny base model's chat template (Jinja, saved with its tokenizer) and the same rendering
in plain Python, for building pre-training text without Jinja per example."""

from __future__ import annotations

import json
from typing import Any

# Hermes-style tool calling (vLLM's `hermes` parser reads it): the tools go into the system block
# as one JSON object a line inside <tools></tools>; a call is
# <tool_call>{"name": ..., "arguments": {...}}</tool_call> (several in a row for parallel calls);
# a tool's result is a `tool` turn. `developer` renders as `system`. Without tools the text is the
# plain `<|role|>\ncontent<|end|>` form. `arguments` may be an object (rendered with tojson, as
# vLLM passes them) or a JSON string (written as it is); trainers pass objects so that both sides
# render the same bytes.
CHAT_TEMPLATE = r"""
{%- set first = messages[0] if messages else none -%}
{%- set has_sys = first is not none and first['role'] in ['system', 'developer'] -%}
{%- if tools -%}
<|system|>
{% if has_sys and first['content'] %}{{ first['content'] }}

{% endif %}# Tools
<tools>
{% for t in tools %}{{ (t['function'] if t['function'] is defined else t) | tojson }}
{% endfor %}</tools>
To call a tool, answer <tool_call>{"name": <tool name>, "arguments": <JSON object>}\
</tool_call><|end|>
{%- endif -%}
{%- for m in messages -%}
{%- if not (tools and loop.first and has_sys) -%}
{%- set role = 'system' if m['role'] == 'developer' else m['role'] -%}
<|{{ role }}|>
{% if m['content'] is string %}{{ m['content'] }}{% endif -%}
{%- if role == 'assistant' and m['tool_calls'] is defined and m['tool_calls'] -%}
{%- for tc in m['tool_calls'] -%}
{%- set f = tc['function'] if tc['function'] is defined else tc -%}
<tool_call>{"name": {{ f['name'] | tojson }}, "arguments": \
{%- if f['arguments'] is string %} {{ f['arguments'] }}\
{%- else %} {{ f['arguments'] | tojson }}{% endif %}}</tool_call>
{%- endfor -%}
{%- endif -%}
<|end|>
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt %}<|assistant|>
{% endif -%}
""".strip().replace("\\\n", "")


def render_chat(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    *,
    add_generation_prompt: bool = False,
) -> str:
    """CHAT_TEMPLATE in plain Python (no jinja per example); tests check that both agree.

    Tool-call arguments must be objects here (as vLLM passes them to the template).
    """
    out: list[str] = []
    rest = messages
    if tools:
        first = messages[0] if messages else None
        lead = ""
        if first is not None and first["role"] in ("system", "developer"):
            rest = messages[1:]
            if first.get("content"):
                lead = f"{first['content']}\n\n"
        listed = "".join(_tojson(t.get("function", t)) + "\n" for t in tools)
        out.append(
            f"<|system|>\n{lead}# Tools\n<tools>\n{listed}</tools>\nTo call a tool, answer "
            '<tool_call>{"name": <tool name>, "arguments": <JSON object>}</tool_call><|end|>'
        )
    for m in rest:
        role = "system" if m["role"] == "developer" else m["role"]
        content = m.get("content")
        text = content if isinstance(content, str) else ""
        if role == "assistant":
            for call in m.get("tool_calls") or ():
                f = call.get("function", call)
                text += (
                    f'<tool_call>{{"name": {_tojson(f["name"])}, '
                    f'"arguments": {_tojson(f["arguments"])}}}</tool_call>'
                )
        out.append(f"<|{role}|>\n{text}<|end|>")
    if add_generation_prompt:
        out.append("<|assistant|>\n")
    return "".join(out)


def _tojson(value: Any) -> str:
    """Jinja's `tojson` as transformers defines it for chat templates."""
    return json.dumps(value, ensure_ascii=False)
