"""Base models: registered by ops, inspected once (digest, layer shapes) without loading them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.base_models.chat_template import probe_tool_support
from registry.base_models.inspect import (
    ALL_FILES_KEY,
    BaseModelInfo,
    inspect_base_model,
)
from registry.base_models.local_copy import source_for
from registry.base_models.repository import BaseModelRepository
from registry.base_models.schemas import BaseModelCreate, BaseModelEvalsIn, PlatformRef
from registry.datasets.service import datasets
from registry.errors import Conflict, NotFound, Unprocessable
from registry.models import BaseModel, Dataset, EvalSuite
from registry.settings import Settings
from registry.storage import StorageError


def _inspect(uri: str, settings: Settings) -> BaseModelInfo:
    try:
        if not uri.startswith("s3://"):
            path = Path(uri.removeprefix("file://"))
            if not path.is_absolute() or not path.is_dir():
                raise Unprocessable(f"uri '{uri}' is not an absolute folder the registry can read")
        return inspect_base_model(source_for(uri, settings))
    except (ValueError, StorageError, OSError) as exc:
        if isinstance(exc, Unprocessable):
            raise
        raise Unprocessable(f"cannot use base model at '{uri}': {exc}") from exc


def base_model_info(model: BaseModel) -> BaseModelInfo:
    """The inspection result as stored, for adapter checks."""
    return BaseModelInfo(
        digest=model.digest,
        files=dict(model.files),
        total_bytes=model.total_bytes,
        architecture=model.architecture,
        model_type=model.config.get("model_type"),
        num_layers=model.num_layers,
        module_shapes={k: list(v) for k, v in model.module_shapes.items()},
        config=dict(model.config),
    )


def known_names(model: BaseModel) -> set[str]:
    """Names an adapter_config.json may use for this base model."""
    return {model.name, model.uri, os.path.basename(model.uri.rstrip("/"))}


class BaseModelService:
    def register(
        self, session: Session, *, actor: Principal, data: BaseModelCreate, settings: Settings
    ) -> BaseModel:
        repo = BaseModelRepository(session)
        if repo.get_by_name(data.name) is not None:
            raise Conflict(f"base model '{data.name}' already exists")
        info = _inspect(data.uri, settings)
        if data.expected_digest and data.expected_digest != info.digest:
            raise Unprocessable(
                f"the files at '{data.uri}' have digest {info.digest}, not the expected "
                f"{data.expected_digest}"
            )
        tools = probe_tool_support(info.chat_template, timeout=settings.chat_template_probe_seconds)
        if data.tool_call_parser and not tools.renders_tools:
            raise Unprocessable(
                f"tool_call_parser '{data.tool_call_parser}' needs a chat template that renders "
                f"`tools` and assistant `tool_calls`, and the one at '{data.uri}' does not: "
                f"{tools.reason}. Register the model without tool_call_parser (no tool calling "
                "is served), or with a template that renders them"
            )
        model = BaseModel(
            name=data.name,
            uri=data.uri,
            digest=info.digest,
            files=info.files,
            total_bytes=info.total_bytes,
            architecture=info.architecture,
            num_layers=info.num_layers,
            module_shapes=info.module_shapes,
            config={**info.config, "model_type": info.model_type, ALL_FILES_KEY: True},
            chat_template_tools=tools.renders_tools,
            tool_call_parser=data.tool_call_parser,
            max_lora_rank=data.max_lora_rank or settings.max_lora_rank,
            created_by=actor.subject,
        )
        repo.add(model)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="base_model.create",
            target_type="base_model",
            target_id=model.name,
            details={
                "uri": model.uri,
                "digest": model.digest,
                "chat_template_tools": model.chat_template_tools,
                "tool_call_parser": model.tool_call_parser,
                "max_lora_rank": model.max_lora_rank,
            },
        )
        return model

    def list(self, session: Session) -> Sequence[BaseModel]:
        return BaseModelRepository(session).list()

    def get(self, session: Session, *, name: str, lock: bool = False) -> BaseModel:
        model = BaseModelRepository(session).get_by_name(name, lock=lock)
        if model is None:
            raise NotFound(f"base model '{name}' not found")
        return model

    def evals_of(
        self, session: Session, model: BaseModel
    ) -> tuple[EvalSuite | None, Dataset | None]:
        """The general suite and the rehearsal dataset `model` points at (None: unset)."""
        suite = session.get(EvalSuite, model.general_suite_id) if model.general_suite_id else None
        data = (
            session.get(Dataset, model.rehearsal_dataset_id) if model.rehearsal_dataset_id else None
        )
        return suite, data

    def set_evals(
        self, session: Session, *, actor: Principal, name: str, data: BaseModelEvalsIn
    ) -> BaseModel:
        """Set the whole forgetting guard: the general suite, the tolerance, the rehearsal set.

        Both must be platform rows (ops'); versions given as null resolve to the latest now.
        """
        model = self.get(session, name=name, lock=True)
        before = _evals_summary(model, *self.evals_of(session, model))
        suite = platform_suite(session, data.general_suite) if data.general_suite else None
        rehearsal = (
            datasets.find(
                session, tenant=None, name=data.rehearsal.dataset, version=data.rehearsal.version
            )
            if data.rehearsal
            else None
        )
        model.general_suite_id = suite.id if suite else None
        model.forgetting_tolerance = data.forgetting_tolerance
        model.rehearsal_dataset_id = rehearsal.id if rehearsal else None
        model.rehearsal_ratio = data.rehearsal.ratio if data.rehearsal else 0.0
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="base_model.evals.set",
            target_type="base_model",
            target_id=model.name,
            details={"before": before, "after": _evals_summary(model, suite, rehearsal)},
        )
        return model


def platform_suite(session: Session, ref: PlatformRef) -> EvalSuite:
    """A platform eval suite (`tenant_id IS NULL`) by name and version (None: the latest)."""
    stmt = select(EvalSuite).where(EvalSuite.tenant_id.is_(None), EvalSuite.name == ref.name)
    if ref.version is not None:
        stmt = stmt.where(EvalSuite.version == ref.version)
    found = session.execute(stmt.order_by(EvalSuite.version.desc()).limit(1)).scalar_one_or_none()
    if found is None:
        which = f"version {ref.version} of " if ref.version is not None else ""
        raise NotFound(
            f"{which}platform eval suite '{ref.name}' not found (a general suite is uploaded "
            "by ops with POST /v1/platform/eval-suites)"
        )
    return found


def _evals_summary(
    model: BaseModel, suite: EvalSuite | None, rehearsal: Dataset | None
) -> dict[str, Any]:
    return {
        "general_suite": (
            {"id": str(suite.id), "name": suite.name, "version": suite.version} if suite else None
        ),
        "forgetting_tolerance": model.forgetting_tolerance,
        "rehearsal": (
            {
                "dataset_id": str(rehearsal.id),
                "name": rehearsal.name,
                "version": rehearsal.version,
                "ratio": model.rehearsal_ratio,
            }
            if rehearsal
            else None
        ),
    }


base_models = BaseModelService()
