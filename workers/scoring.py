"""Score the subjects of a job — the candidate, the base model (adapter disabled) and
`production` (loaded beside it, verified against its manifest) — on the held-out rows and on
every eval suite, each suite's rows read once."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from registry.adapters.promotion import GENERAL
from registry.errors import Inconsistent
from registry.models import AdapterVersion
from workers.cache import adapter_path
from workers.context import WorkerContext
from workers.inputs import read_rows
from workers.suites import SuiteScores, SuiteSpec, score_subject

Progress = Callable[[str], None]


@dataclass
class Scored:
    heldout: dict[str, dict[str, float]] = field(default_factory=dict)  # subject -> metrics
    suites: SuiteScores = field(default_factory=SuiteScores)

    def subject(self, name: str) -> dict[str, dict[str, float]]:
        """All of one subject's scores by suite ("heldout" included when scored)."""
        out = dict(self.suites.scores.get(name, {}))
        if name in self.heldout:
            out["heldout"] = self.heldout[name]
        return out


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if math.isfinite(v)}


def score_all(
    ctx: WorkerContext,
    model: Any,
    tokenizer: Any,
    *,
    specs: list[SuiteSpec],
    heldout: Callable[[], dict[str, float]] | None,
    production: AdapterVersion | None,
    base_digest: str,
    batch_size: int,
    pad_id: int,
    max_seq_length: int,
    progress: Progress,
) -> Scored:
    from workers.evals.score import score_suite

    settings = ctx.settings
    rows = {spec.suite.id: read_rows(ctx.store, spec.suite) for spec in specs}
    out = Scored()
    current = {"subject": ""}

    def scorer(spec: SuiteSpec) -> tuple[dict[str, float], dict[str, Any]]:
        label = f"scoring {current['subject']} on {spec.label}"
        progress(label)
        result = score_suite(
            model,
            tokenizer,
            rows[spec.suite.id],
            batch_size=batch_size,
            pad_id=pad_id,
            max_new_tokens=settings.eval_max_new_tokens,
            schema_steps=settings.dataset_schema_steps,
            max_seq_length=max_seq_length,
            on_progress=lambda done, total: progress(f"{label}: {done}/{total} rows"),
        )
        return _finite(result.metrics), {**result.details, "suite": spec.ref}

    def run(subject: str, version: int | None = None) -> None:
        current["subject"] = subject.replace("_", " ")
        if heldout is not None:
            progress(f"scoring {current['subject']} on the held-out rows")
            out.heldout[subject] = _finite(heldout())
        score_subject(out.suites, specs, subject, scorer, version=version)

    run("candidate")
    with model.disable_adapter():
        run("base_model")
    if production is not None and production.base_model_digest == base_digest:
        needs = heldout is not None or any(
            s.key != GENERAL and s.production_score is None for s in specs
        )
        if not needs:
            score_subject(out.suites, specs, "production", scorer)  # cached scores only
            return out
        if not (production.artifact_prefix and production.manifest):
            raise Inconsistent(f"production version {production.version} has no artifact")
        folder = adapter_path(
            ctx.store,
            version_id=str(production.id),
            prefix=production.artifact_prefix,
            files=production.manifest["files"],
            settings=settings,
        )
        model.load_adapter(str(folder), adapter_name="production")
        model.set_adapter("production")
        try:
            run("production", version=production.version)
        finally:
            model.set_adapter("default")
    return out
