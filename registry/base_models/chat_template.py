"""Does a base model's chat template render tool calling? Found once, at registration.

The template is found as transformers 5 finds it (`chat_template.jinja`, else
`chat_template.json`, else `tokenizer_config.json`; a list of named templates gives its
`tool_use` one, else `default`) and rendered with a probe conversation: one called tool, one
listed but not called, an assistant tool call with an object as `arguments` (as vLLM passes
them) and its `tool` result. The template renders tools only if the uncalled tool's name, the
called tool's name (twice: listed and called) and the call's argument value all appear.

The render mirrors transformers' `render_jinja_template` (sandbox, `tojson` without ASCII
escaping, `raise_exception`, `strftime_now`, trim/lstrip blocks, loop controls, a no-op
`{% generation %}`) and runs in a child process with a wall-clock timeout, CPU and memory
limits and a cap on the output: a template is data, and one that raises, loops or explodes is
simply "no tools", never an error of the registry. This module is also that child's program.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json", "tokenizer_config.json")
MAX_OUTPUT_CHARS = 1 << 20  # a probe conversation renders to a few KiB in any real template
MAX_CHILD_MEMORY = 1 << 30

CALLED_TOOL = "lpx_probe_lookup"
OTHER_TOOL = "lpx_probe_other"
ARG_VALUE = "lpx-probe-value-7f3a"
PROBE_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": "A probe tool.",
            "parameters": {
                "type": "object",
                "properties": {"probe_arg": {"type": "string", "description": "A value."}},
                "required": ["probe_arg"],
            },
        },
    }
    for name in (CALLED_TOOL, OTHER_TOOL)
]
PROBE_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a probe."},
    {"role": "user", "content": "Look it up."},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "a1b2c3d4e",  # nine alphanumerics: Mistral-style templates insist
                "type": "function",
                "function": {"name": CALLED_TOOL, "arguments": {"probe_arg": ARG_VALUE}},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "a1b2c3d4e", "name": CALLED_TOOL, "content": "found"},
]


@dataclass(frozen=True)
class ChatTemplate:
    text: str
    tokens: dict[str, str] = field(default_factory=dict)  # bos_token etc. from tokenizer_config


@dataclass(frozen=True)
class ToolSupport:
    renders_tools: bool
    reason: str  # why not, for a person; "" when it does


def find_chat_template(files: dict[str, bytes]) -> ChatTemplate | None:
    """The template among the model's `TEMPLATE_FILES` (name -> content); None if it has none.
    Unreadable files count as absent: the template's use is checked by rendering it."""
    config = _json_object(files.get("tokenizer_config.json"))
    tokens = {
        k: v if isinstance(v, str) else v["content"]
        for k, v in config.items()
        if k.endswith("_token")
        and (isinstance(v, str) or (isinstance(v, dict) and isinstance(v.get("content"), str)))
    }
    text: Any = None
    if "chat_template.jinja" in files:
        text = files["chat_template.jinja"].decode("utf-8", errors="replace")
    elif "chat_template.json" in files:
        text = _json_object(files["chat_template.json"]).get("chat_template")
    else:
        text = config.get("chat_template")
    if isinstance(text, list):  # named templates: [{"name": ..., "template": ...}]
        named = {t.get("name"): t.get("template") for t in text if isinstance(t, dict)}
        text = named.get("tool_use") or named.get("default")
    return ChatTemplate(text=text, tokens=tokens) if isinstance(text, str) and text else None


def probe_tool_support(template: ChatTemplate | None, *, timeout: float) -> ToolSupport:
    """Render the probe conversation in a child process (at most `timeout` seconds)."""
    if template is None:
        return ToolSupport(False, "the model folder has no chat template")
    request = json.dumps({"template": template.text, "tokens": template.tokens})
    try:
        done = subprocess.run(
            [sys.executable, "-m", __name__],
            input=request,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        answer = json.loads(done.stdout)
        return ToolSupport(bool(answer["renders_tools"]), str(answer["reason"]))
    except subprocess.TimeoutExpired:
        return ToolSupport(False, f"rendering the template took longer than {timeout:g} s")
    except (ValueError, KeyError, TypeError, OSError):
        return ToolSupport(False, "rendering the template failed (it ran out of memory or time)")


def _json_object(data: bytes | None) -> dict[str, Any]:
    try:
        doc = json.loads(data) if data is not None else {}
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def render_probe(template: str, tokens: dict[str, str]) -> ToolSupport:
    """The probe itself (in the child): render, then look for the tools and the call."""
    import datetime as dt

    import jinja2
    from jinja2 import nodes
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class _Generation(Extension):  # transformers' `{% generation %}` marks; a no-op here
        tags = {"generation"}

        def parse(self, parser: Any) -> nodes.Node:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

        def _render(self, caller: Any) -> str:
            return str(caller())

    def tojson(x: Any, ensure_ascii: bool = False, indent: Any = None,
               separators: Any = None, sort_keys: bool = False) -> str:  # fmt: skip
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    def raise_exception(message: str) -> None:
        raise jinja2.TemplateError(message)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: dt.datetime.now().strftime(fmt)
    try:
        compiled = env.from_string(template)
        parts, size = [], 0
        context = {
            **tokens,
            "messages": PROBE_MESSAGES,
            "tools": PROBE_TOOLS,
            "add_generation_prompt": False,
        }
        for part in compiled.generate(**context):
            parts.append(part)
            size += len(part)
            if size > MAX_OUTPUT_CHARS:
                return ToolSupport(False, f"the template renders more than {MAX_OUTPUT_CHARS:,} "
                                          "characters for a short conversation")  # fmt: skip
    except Exception as exc:  # any failure of the template's own code means "no tools"
        why = str(exc) or type(exc).__name__
        return ToolSupport(False, f"the template fails on a conversation with tools: {why}")
    out = "".join(parts)
    if OTHER_TOOL not in out:
        return ToolSupport(False, "the template does not render the `tools` list")
    if out.count(CALLED_TOOL) < 2 or ARG_VALUE not in out:
        return ToolSupport(False, "the template does not render assistant `tool_calls`")
    return ToolSupport(True, "")


def _child() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MAX_CHILD_MEMORY, MAX_CHILD_MEMORY))
    request = json.loads(sys.stdin.read())
    result = render_probe(str(request["template"]), dict(request["tokens"]))
    sys.stdout.write(json.dumps({"renders_tools": result.renders_tools, "reason": result.reason}))


if __name__ == "__main__":
    _child()
