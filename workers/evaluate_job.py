"""The evaluate task: score an existing version on its eval suites, without touching it.

Loads the base model and the version's verified artifact, scores the version on every suite
pinned to its adapter and on its base model's general suite, and the base model and
`production` where they have no score on a suite yet; records the evals; done. No alias moves:
promotion is decided when a version is trained (or by a person, for an uploaded one).
"""

from __future__ import annotations

import time
from typing import Any

from registry.base_models.local_copy import base_model_path
from registry.errors import Inconsistent, require
from registry.training.lifecycle import lifecycle
from registry.training.repository import PlatformJobRepository
from registry.training.service import add_event
from workers.cache import adapter_path
from workers.context import WorkerContext
from workers.gate import record_suites
from workers.heartbeat import Heartbeat
from workers.inputs import JobInputError, JobInputs
from workers.pipeline import Cancelled, LeaseLost
from workers.scoring import score_all

DEFAULT_SEQ_LENGTH = 1024  # an uploaded version has no training config to take it from


def run_evaluation(ctx: WorkerContext, inputs: JobInputs, heart: Heartbeat) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    version, settings = inputs.version, ctx.settings
    if not inputs.suites:
        raise JobInputError("no eval suites to score: pin one to the adapter first")
    if not (version.artifact_prefix and version.manifest):
        raise Inconsistent(f"version {version.version} has no artifact")
    started = time.monotonic()

    def progress(label: str) -> None:
        heart.update({"stage": label})
        if heart.lost:
            raise LeaseLost()
        if not heart.keep_going:
            raise Cancelled()

    progress("loading the base model and the adapter")
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    base_dir = base_model_path(inputs.base, settings)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model: Any = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    folder = adapter_path(
        ctx.store,
        version_id=str(version.id),
        prefix=version.artifact_prefix,
        files=version.manifest["files"],
        settings=settings,
    )
    model = PeftModel.from_pretrained(model, str(folder), adapter_name="default")
    if torch.cuda.is_available():
        model.to("cuda")
    pad = tokenizer.pad_token_id
    production = inputs.production
    if production is not None and production.id == version.id:
        production = None  # scoring the version scores production
    cfg = inputs.config
    scored = score_all(
        ctx,
        model,
        tokenizer,
        specs=inputs.suites,
        heldout=None,
        production=production,
        base_digest=inputs.base.digest,
        batch_size=max(1, min(int(cfg.get("batch_size", 8)), 16)),
        pad_id=pad if pad is not None else 0,
        max_seq_length=int(cfg.get("max_seq_length", DEFAULT_SEQ_LENGTH)),
        progress=progress,
    )
    with ctx.session() as session:
        job = require(PlatformJobRepository(session).find(inputs.job.id), "job")
        if job.status != "running" or job.worker != heart.worker:
            raise LeaseLost()
        record_suites(
            session,
            actor=ctx.actor,
            tenant=inputs.tenant,
            adapter=inputs.adapter,
            number=version.version,
            suites=scored.suites,
            job_id=str(job.id),
        )
        summary = "; ".join(
            f"{key} pass_rate {m.get('pass_rate', float('nan')):.3f}"
            for key, m in scored.suites.scores.get("candidate", {}).items()
        )
        add_event(session, job, "scored", f"version {version.version}: {summary}")
        lifecycle.succeed(
            session,
            job=job,
            result={
                "suites": scored.suites.scores,
                "eval_seconds": round(time.monotonic() - started, 2),
            },
        )
