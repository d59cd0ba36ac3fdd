from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel as Schema
from pydantic import ConfigDict, Field, field_validator

from registry.auth.principal import Principal
from registry.auth.scopes import Role

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
# vLLM 0.32's built-in tool-call parsers (`vllm.tool_parsers`): the registry cannot import vLLM,
# and tests/registry/base_models/test_tool_parsers.py keeps this list equal to vLLM's.
# fmt: off
TOOL_CALL_PARSERS = frozenset((
    "apertus", "cohere_command3", "cohere_command4", "deepseek_v3", "deepseek_v31",
    "deepseek_v32", "deepseek_v4", "deepseek_v41", "dots", "ernie45", "functiongemma", "gemma4",
    "gigachat3", "glm45", "glm47", "granite", "granite-20b-fc", "granite4", "hermes", "hf",
    "hunyuan_a13b", "hy_v3", "hy_v4", "inkling", "internlm", "jamba", "k2_horizon", "kimi_k2",
    "kimi_k3", "lfm2", "ling3", "llama3_json", "llama4_json", "llama4_pythonic", "longcat",
    "mimo", "minicpm5", "minimax_m2", "minimax_m3", "mistral", "muse_glimmer", "olmo3", "openai",
    "phi4_mini_json", "plamo3", "poolside_v1", "pythonic", "qwen3_coder", "qwen3_json",
    "qwen3_xml", "seed_oss", "step3", "step3p5", "xlam",
))
# fmt: on


class BaseModelCreate(Schema):
    name: str = Field(pattern=NAME_PATTERN)
    uri: str = Field(
        min_length=1,
        max_length=1000,
        description="a local folder readable by the registry, or s3://bucket/prefix",
    )
    expected_digest: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="refuse if the files differ"
    )
    tool_call_parser: str | None = Field(
        default=None,
        description="the vLLM tool-call parser that reads this model's calls (e.g. `hermes`); "
        "the engine then serves tool calling. Needs a chat template that renders tools. "
        "Default: no tool calling served",
    )

    @field_validator("tool_call_parser")
    @classmethod
    def _known_parser(cls, value: str | None) -> str | None:
        if value is not None and value not in TOOL_CALL_PARSERS:
            raise ValueError(
                f"'{value}' is not one of vLLM's tool-call parsers: "
                f"{', '.join(sorted(TOOL_CALL_PARSERS))} (Hermes-style templates use 'hermes')"
            )
        return value


class BaseModelOut(Schema):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    uri: str | None = Field(description="where the files are: shown to ops and auditors only")
    digest: str
    files: dict[str, str]
    total_bytes: int
    architecture: str | None
    num_layers: int
    module_shapes: dict[str, list[int]]
    config: dict[str, Any]
    chat_template_tools: bool = Field(
        description="whether the chat template renders `tools` and assistant `tool_calls` "
        "(found at registration); training on rows with tools needs it"
    )
    tool_call_parser: str | None = Field(
        description="the vLLM tool-call parser the engine serves this model with; null: no "
        "tool calling served"
    )
    created_by: str
    created_at: dt.datetime


def base_model_out(model: object, principal: Principal) -> BaseModelOut:
    """The row as `principal` may see it: tenants do not see `uri` (server paths, buckets)."""
    out = BaseModelOut.model_validate(model)
    return (
        out if principal.role in (Role.OPS, Role.AUDITOR) else out.model_copy(update={"uri": None})
    )
