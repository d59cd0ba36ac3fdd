from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel as Schema
from pydantic import ConfigDict, Field, field_validator

from registry.auth.principal import Principal
from registry.auth.scopes import Role
from registry.lora_ranks import VLLM_LORA_RANKS, check_lora_rank
from registry.models import BaseModel, Dataset, EvalSuite
from registry.validation_types import INT32_MAX

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
    max_lora_rank: int | None = Field(
        default=None,
        description="the highest LoRA rank served on this model: uploads and training above it "
        "are refused, and its engines start with it as --max-lora-rank (every adapter is "
        "padded to it). One of vLLM's ranks: " + ", ".join(map(str, VLLM_LORA_RANKS)) + ". "
        "Default: the max_lora_rank setting",
    )

    @field_validator("max_lora_rank")
    @classmethod
    def _servable_rank(cls, value: int | None) -> int | None:
        return value if value is None else check_lora_rank(value)

    @field_validator("tool_call_parser")
    @classmethod
    def _known_parser(cls, value: str | None) -> str | None:
        if value is not None and value not in TOOL_CALL_PARSERS:
            raise ValueError(
                f"'{value}' is not one of vLLM's tool-call parsers: "
                f"{', '.join(sorted(TOOL_CALL_PARSERS))} (Hermes-style templates use 'hermes')"
            )
        return value


class PlatformRef(Schema):
    """A platform suite version by name; `version` null: its latest version now (the base
    model keeps that exact version; a later upload does not move it)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    version: int | None = Field(default=None, ge=1, le=INT32_MAX)


class RehearsalIn(Schema):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(pattern=NAME_PATTERN, description="a platform dataset's name")
    version: int | None = Field(default=None, ge=1, le=INT32_MAX, description="null: latest")
    ratio: float = Field(
        gt=0,
        le=0.9,
        allow_inf_nan=False,
        description="share of every training run's rows drawn from this dataset",
    )


class BaseModelEvalsIn(Schema):
    """The whole forgetting guard of a base model, replaced at once (omitted fields: off)."""

    model_config = ConfigDict(extra="forbid")

    general_suite: PlatformRef | None = Field(
        default=None,
        description="a platform eval suite every candidate and the base model are scored on",
    )
    forgetting_tolerance: float = Field(
        default=0.05,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="how far below the base model's general-suite score a candidate may fall",
    )
    rehearsal: RehearsalIn | None = Field(
        default=None, description="platform rows mixed into every tenant's training"
    )


class GeneralSuiteOut(Schema):
    id: uuid.UUID
    name: str
    version: int
    sha256: str


class RehearsalOut(Schema):
    dataset_id: uuid.UUID
    name: str
    version: int
    sha256: str
    rows: int
    ratio: float


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
    max_lora_rank: int = Field(
        description="the highest LoRA rank served on this model (set at registration): uploads "
        "and training above it are refused"
    )
    general_suite: GeneralSuiteOut | None = Field(
        default=None, description="the platform suite scored against forgetting; null: none"
    )
    forgetting_tolerance: float
    rehearsal: RehearsalOut | None = Field(
        default=None, description="platform rows mixed into training; null: none"
    )
    created_by: str
    created_at: dt.datetime


def base_model_out(
    model: BaseModel,
    principal: Principal,
    *,
    general_suite: EvalSuite | None = None,
    rehearsal: Dataset | None = None,
) -> BaseModelOut:
    """The row as `principal` may see it: tenants do not see `uri` (server paths, buckets).

    `general_suite` and `rehearsal` are the rows `model` points at (see
    `BaseModelService.evals_of`)."""
    out = BaseModelOut.model_validate(model).model_copy(
        update={
            "general_suite": (
                GeneralSuiteOut.model_validate(general_suite, from_attributes=True)
                if general_suite
                else None
            ),
            "rehearsal": (
                RehearsalOut(
                    dataset_id=rehearsal.id,
                    name=rehearsal.name,
                    version=rehearsal.version,
                    sha256=rehearsal.sha256,
                    rows=rehearsal.rows,
                    ratio=model.rehearsal_ratio,
                )
                if rehearsal
                else None
            ),
        }
    )
    return (
        out if principal.role in (Role.OPS, Role.AUDITOR) else out.model_copy(update={"uri": None})
    )
