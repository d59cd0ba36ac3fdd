"""Whether a base model's chat template renders tool calls: found by rendering a probe."""

from __future__ import annotations

import json
import time

import pytest

from registry.base_models.chat_template import (
    ChatTemplate,
    find_chat_template,
    probe_tool_support,
    render_probe,
)
from tests.registry.base_models.templates import HERMES, PLAIN


def probe(template: str, timeout: float = 20) -> tuple[bool, str]:
    support = probe_tool_support(ChatTemplate(template), timeout=timeout)
    return support.renders_tools, support.reason


def test_hermes_templates_render_tools() -> None:
    from workers.devmodel.build import CHAT_TEMPLATE  # the tiny dev model's

    assert probe(CHAT_TEMPLATE) == (True, "")
    assert probe(HERMES) == (True, "")
    # what transformers' `{% generation %}` marks do not change
    marked = "{% generation %}" + HERMES + "{% endgeneration %}"
    assert probe(marked) == (True, "")


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        (PLAIN, "does not render the `tools` list"),
        # lists the tools but drops the call
        ("{{ tools | tojson }}{% for m in messages %}{{ m.content }}{% endfor %}",
         "does not render assistant `tool_calls`"),
        # only the call: no tools list
        ("{% for m in messages %}{{ m | tojson }}{% endfor %}", "does not render the `tools`"),
        ("{{ raise_exception('tools are not supported') }}", "tools are not supported"),
        ("{% if %}", "fails on a conversation with tools"),  # does not compile
        ("{{ ''.__class__.__mro__ }}", "unsafe"),  # the sandbox refuses
        ("{{ messages.append(1) }}", "unsafe"),  # immutable
        ("{{ 'x' * 10**10 }}", "fails on a conversation with tools"),  # memory cap
        ("{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxxxxxxxxxx"
         "{% endfor %}{% endfor %}", "more than 1,048,576 characters"),
    ],
)  # fmt: skip
def test_templates_that_do_not_render_tools(template: str, reason: str) -> None:
    renders, why = probe(template)
    assert not renders and reason in why, why


def test_a_template_that_loops_is_stopped_at_the_timeout() -> None:
    started = time.monotonic()
    loop = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    assert probe(loop, timeout=2) == (False, "rendering the template took longer than 2 s")
    assert time.monotonic() - started < 10


def test_no_template() -> None:
    support = probe_tool_support(None, timeout=5)
    assert not support.renders_tools and "no chat template" in support.reason


def test_special_tokens_reach_the_template() -> None:
    template = "{{ bos_token }}" + HERMES
    assert render_probe(template, {"bos_token": "<s>"}).renders_tools


def test_the_template_is_found_where_transformers_looks() -> None:
    config = {"chat_template": "from-config", "bos_token": {"content": "<s>"}, "eos_token": "</s>"}
    files = {"tokenizer_config.json": json.dumps(config).encode()}
    found = find_chat_template(files)
    assert found == ChatTemplate("from-config", {"bos_token": "<s>", "eos_token": "</s>"})
    files["chat_template.json"] = json.dumps({"chat_template": "from-json"}).encode()
    assert find_chat_template(files).text == "from-json"  # type: ignore[union-attr]
    files["chat_template.jinja"] = b"from-jinja"
    assert find_chat_template(files).text == "from-jinja"  # type: ignore[union-attr]
    named = [{"name": "default", "template": "plain"}, {"name": "tool_use", "template": "tools"}]
    one = {"tokenizer_config.json": json.dumps({"chat_template": named}).encode()}
    assert find_chat_template(one).text == "tools"  # type: ignore[union-attr]
    assert find_chat_template({}) is None
    assert find_chat_template({"tokenizer_config.json": b"not json"}) is None
    assert find_chat_template({"tokenizer_config.json": b'{"chat_template": 3}'}) is None
