"""The registry's list of tool-call parsers is vLLM's: it cannot import vLLM to ask."""

from __future__ import annotations

from registry.base_models.schemas import TOOL_CALL_PARSERS


def test_the_allow_list_is_vllms_parsers() -> None:
    from vllm.tool_parsers import ToolParserManager

    assert set(ToolParserManager.list_registered()) == TOOL_CALL_PARSERS
    assert "hermes" in TOOL_CALL_PARSERS
