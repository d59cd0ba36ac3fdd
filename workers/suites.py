"""The eval suites a version is scored on: the suites pinned to its adapter and its base model's
general suite, with the scores the base model and `production` already have on them (each is
scored on a suite version once, then reused: comparisons stay like for like)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from registry.adapters.promotion import GENERAL
from registry.evals.repository import EvalRepository
from registry.models import Adapter, AdapterVersion, BaseModel, EvalSuite
from registry.suites.pins import pinned_suites


@dataclass
class SuiteSpec:
    key: str  # the name a promotion policy uses: the pinned suite's name, or "general"
    suite: EvalSuite
    base_score: dict[str, float] | None = None  # the base model's, if scored already
    production_score: dict[str, float] | None = None

    @property
    def label(self) -> str:
        """`Eval.suite`: the suite's name and version (general suites marked)."""
        name = f"{self.suite.name}:v{self.suite.version}"
        return f"{GENERAL}:{name}" if self.key == GENERAL else name

    @property
    def ref(self) -> dict[str, Any]:
        s = self.suite
        return {"suite_id": str(s.id), "name": s.name, "version": s.version, "sha256": s.sha256}


def load_suites(
    session: Session, adapter: Adapter, base: BaseModel, production: AdapterVersion | None
) -> list[SuiteSpec]:
    specs = [SuiteSpec(s.name, s) for s in pinned_suites(session, adapter)]
    if base.general_suite_id is not None:
        general = session.get(EvalSuite, base.general_suite_id)
        if general is not None and general.tenant_id is None:
            specs.append(SuiteSpec(GENERAL, general))
    evals = EvalRepository(session, adapter.tenant_id)
    for spec in specs:
        found = evals.latest_on_suite(
            adapter_id=adapter.id, suite_id=spec.suite.id, subject="base_model"
        )
        spec.base_score = found.metrics if found else None
        if production is not None:
            found = evals.latest_on_suite(
                adapter_id=adapter.id,
                suite_id=spec.suite.id,
                subject="version",
                version_id=production.id,
            )
            spec.production_score = found.metrics if found else None
    return specs


@dataclass
class NewEval:
    """A score to record: `version` None is the version being trained or evaluated."""

    spec: SuiteSpec
    subject: str  # "version" | "base_model"
    metrics: dict[str, float]
    details: dict[str, Any]
    version: int | None = None


@dataclass
class SuiteScores:
    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # subject->key
    new: list[NewEval] = field(default_factory=list)

    def put(self, subject: str, spec: SuiteSpec, metrics: dict[str, float]) -> None:
        self.scores.setdefault(subject, {})[spec.key] = metrics


Scorer = Callable[[SuiteSpec], tuple[dict[str, float], dict[str, Any]]]


def score_subject(
    out: SuiteScores,
    specs: list[SuiteSpec],
    subject: str,
    scorer: Scorer,
    *,
    version: int | None = None,
) -> None:
    """Scores one subject ("candidate", "base_model" or "production") on the suites it needs:
    the candidate on all, the base model and production only where they have no score yet
    (production is not scored on the general suite: the forgetting guard compares with the
    base model)."""
    for spec in specs:
        if subject == "base_model" and spec.base_score is not None:
            out.put(subject, spec, spec.base_score)
            continue
        if subject == "production" and (spec.key == GENERAL or spec.production_score is not None):
            if spec.production_score is not None:
                out.put(subject, spec, spec.production_score)
            continue
        metrics, details = scorer(spec)
        out.put(subject, spec, metrics)
        kind = "base_model" if subject == "base_model" else "version"
        out.new.append(NewEval(spec, kind, metrics, details, version))


def suite_ids(specs: list[SuiteSpec]) -> list[uuid.UUID]:
    return [s.suite.id for s in specs]
