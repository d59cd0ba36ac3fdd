"""The stages of one training run, in order: prepare (data, base model, examples), fit (the
LoRA loop with progress and cancel), publish (checked artifact, manifest last), evaluate
(candidate, base model, production), finish (evals, ready, promotion gate).

Heavy ML imports happen inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.base_models.local_copy import base_model_path
from registry.errors import Inconsistent, require
from registry.training.lifecycle import lifecycle
from registry.training.repository import PlatformJobRepository
from registry.training.service import add_event
from workers.cache import adapter_path
from workers.context import WorkerContext
from workers.gate import record_and_decide
from workers.heartbeat import Heartbeat
from workers.inputs import JobInputError, JobInputs, read_rows, rows_digest
from workers.publish import check_adapter, library_versions, publish


class Cancelled(Exception):
    pass


class LeaseLost(Exception):
    pass


@dataclass
class Run:
    ctx: WorkerContext
    inputs: JobInputs
    heart: Heartbeat
    model: Any = None  # PeftModel once fitted
    tokenizer: Any = None
    pad_id: int = 0
    heldout_rows: list[dict[str, Any]] = field(default_factory=list)
    heldout_digest: str = ""
    train_set: list[Any] = field(default_factory=list)
    eval_set: list[Any] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    manifest_digest: str = ""

    @property
    def cfg(self) -> dict[str, Any]:
        return self.inputs.config

    def event(self, kind: str, message: str, **data: Any) -> None:
        with self.ctx.session() as session:
            job = require(PlatformJobRepository(session).find(self.inputs.job.id), "job")
            add_event(session, job, kind, message, **data)

    def stage(self, name: str, **extra: Any) -> None:
        self.heart.update({**self.metrics.get("progress", {}), **extra, "stage": name})


def run_pipeline(ctx: WorkerContext, inputs: JobInputs, heart: Heartbeat) -> None:
    run = Run(ctx, inputs, heart)
    prepare(run)
    fit(run)
    work = Path(tempfile.mkdtemp(prefix="loraplex-train-"))
    try:
        publish_artifact(run, work / "adapter")
        scores = evaluate(run)
        finish(run, scores)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def prepare(run: Run) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workers.training.data import render_rows, split_heldout

    cfg, settings, inputs = run.cfg, run.ctx.settings, run.inputs
    rows: list[dict[str, Any]] = []
    for dataset in inputs.train_sets:
        rows += read_rows(run.ctx.store, dataset)
    if inputs.validation is not None:
        train_rows, run.heldout_rows = rows, read_rows(run.ctx.store, inputs.validation)
    else:
        train_rows, run.heldout_rows = split_heldout(
            rows, seed=cfg["seed"], fraction=settings.heldout_fraction
        )
    run.heldout_digest = rows_digest(run.heldout_rows)
    base_dir = base_model_path(inputs.base, settings)
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    torch.manual_seed(cfg["seed"])
    run.tokenizer = AutoTokenizer.from_pretrained(base_dir)
    run.model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    if torch.cuda.is_available():  # a GPU worker; CPU otherwise (fp32 either way)
        run.model.to("cuda")
    pad = run.tokenizer.pad_token_id
    run.pad_id = pad if pad is not None else 0
    run.train_set = render_rows(train_rows, run.tokenizer, cfg["max_seq_length"])
    run.eval_set = render_rows(run.heldout_rows, run.tokenizer, cfg["max_seq_length"])
    if not run.train_set or not run.eval_set:
        raise JobInputError(
            f"nothing to train on: {len(run.train_set)} training and {len(run.eval_set)} "
            f"held-out examples keep an answer token within max_seq_length={cfg['max_seq_length']}"
        )
    run.event(
        "data",
        f"{len(run.train_set)} training and {len(run.eval_set)} held-out examples",
        train_rows=len(train_rows),
        heldout_rows=len(run.heldout_rows),
        heldout_source="validation dataset" if inputs.validation else "seeded split",
    )


def _progress(p: Any) -> dict[str, Any]:
    return {
        "step": p.step,
        "total_steps": p.total_steps,
        "epoch": round(p.epoch, 4),
        "train_loss": round(p.train_loss, 6),
        "eval_loss": None if p.eval_loss is None else round(p.eval_loss, 6),
        "tokens_per_second": round(p.tokens_per_second, 1),
        "tokens_seen": p.tokens_seen,
    }


def fit(run: Run) -> None:
    from workers.training.loop import LoopConfig, Progress, train
    from workers.training.lora import attach_lora

    cfg = run.cfg
    run.model = attach_lora(
        run.model,
        rank=cfg["rank"],
        alpha=cfg["alpha"],
        dropout=cfg["dropout"],
        target_modules=cfg["target_modules"],
        seed=cfg["seed"],
    )
    patience = cfg.get("early_stopping_patience", 3)
    loop_cfg = LoopConfig(
        learning_rate=cfg["learning_rate"],
        epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        seed=cfg["seed"],
        patience=patience if patience > 0 else 1 << 30,
        max_steps=cfg.get("max_steps"),
    )

    def on_step(p: Progress) -> bool:
        run.metrics["progress"] = _progress(p)
        run.heart.update(run.metrics["progress"])
        return run.heart.keep_going

    def on_eval(p: Progress) -> None:
        run.event("eval", f"step {p.step}: eval loss {p.eval_loss:.4f}", **_progress(p))

    result = train(
        run.model,
        run.train_set,
        run.eval_set,
        loop_cfg,
        pad_id=run.pad_id,
        on_step=on_step,
        on_eval=on_eval,
    )
    if run.heart.lost:
        raise LeaseLost()
    if result.cancelled:
        raise Cancelled()
    run.metrics["training"] = {
        "steps": result.steps,
        "best_step": result.best_step,
        "best_eval_loss": result.best_eval_loss,
        "stopped_early": result.stopped_early,
        "train_tokens": result.train_tokens,
        "tokens_per_second": round(result.tokens_per_second, 1),
        "seconds": round(result.seconds, 2),
    }


def publish_artifact(run: Run, folder: Path) -> None:
    from workers.training.lora import save_adapter

    inputs = run.inputs
    run.stage("storing artifact")
    save_adapter(run.model, folder, base_model_name=inputs.base.name)
    check_adapter(folder, inputs, run.ctx.settings)
    datasets = [(d, "train") for d in inputs.train_sets]
    if inputs.validation is not None:
        datasets.append((inputs.validation, "validation"))
    extra = {
        "job_id": str(inputs.job.id),
        "trigger": inputs.job.trigger,
        "training_config": run.cfg,
        "data": [
            {
                "dataset_id": str(d.id),
                "name": d.name,
                "version": d.version,
                "sha256": d.sha256,
                "rows": d.rows,
                "role": role,
            }
            for d, role in datasets
        ],
        "heldout": {"rows": len(run.heldout_rows), "sha256": run.heldout_digest},
        "metrics": run.metrics["training"],
        "libraries": library_versions(),
    }
    run.manifest, run.manifest_digest, size = publish(run.ctx.store, folder, inputs, extra)
    with run.ctx.session() as session:
        job = require(PlatformJobRepository(session).find(inputs.job.id), "job")
        lifecycle.record_artifact(
            session,
            job=job,
            prefix=inputs.prefix,
            manifest=run.manifest,
            manifest_digest=run.manifest_digest,
            size_bytes=size,
        )
    if run.heart.lost:
        raise LeaseLost()


def evaluate(run: Run) -> dict[str, dict[str, float]]:
    """Candidate, base model (adapter disabled) and production (loaded beside it, verified
    against its manifest), all on the same held-out rows."""
    from workers.training.evaluate import row_kinds, score

    run.stage("evaluating")
    settings, model = run.ctx.settings, run.model
    started = time.monotonic()
    run.metrics["generated"] = row_kinds(run.heldout_rows[: settings.eval_max_generate])

    def scored() -> dict[str, float]:
        metrics = score(
            model,
            run.tokenizer,
            run.heldout_rows,
            run.eval_set,
            batch_size=max(1, min(run.cfg["batch_size"], 16)),
            pad_id=run.pad_id,
            max_generate=settings.eval_max_generate,
            max_new_tokens=settings.eval_max_new_tokens,
            schema_steps=settings.dataset_schema_steps,
        )
        return {k: v for k, v in metrics.items() if math.isfinite(v)}

    scores = {"candidate": scored()}
    with model.disable_adapter():
        scores["base_model"] = scored()
    production = run.inputs.production
    if production is not None and production.base_model_digest == run.inputs.base.digest:
        if not (production.artifact_prefix and production.manifest):
            raise Inconsistent(f"production version {production.version} has no artifact")
        folder = adapter_path(
            run.ctx.store,
            version_id=str(production.id),
            prefix=production.artifact_prefix,
            files=production.manifest["files"],
            settings=settings,
        )
        model.load_adapter(str(folder), adapter_name="production")
        model.set_adapter("production")
        scores["production"] = scored()
        model.set_adapter("default")
    run.metrics["eval_seconds"] = round(time.monotonic() - started, 2)
    return scores


def finish(run: Run, scores: dict[str, dict[str, float]]) -> None:
    inputs = run.inputs
    with run.ctx.session() as session:
        job = require(PlatformJobRepository(session).find(inputs.job.id), "job")
        if job.status != "running" or job.worker != run.heart.worker:
            raise LeaseLost()
        inputs.job = job
        decision = record_and_decide(
            session,
            actor=run.ctx.actor,
            inputs=inputs,
            suite=f"heldout-{run.heldout_digest[:12]}",
            scores=scores,
            details={
                "heldout_rows": len(run.heldout_rows),
                "heldout_sha256": run.heldout_digest,
                "generated_rows": run.metrics["generated"],  # rows behind each metric, by kind
            },
        )
        lifecycle.succeed(
            session,
            job=job,
            result={
                "training": run.metrics["training"],
                "scores": scores,
                "eval_seconds": run.metrics["eval_seconds"],
                "promoted": decision.promote,
                "decision": decision.reason,
                "manifest_digest": run.manifest_digest,
                "adapter_sha256": run.manifest["files"]["adapter_model.safetensors"]["sha256"],
            },
        )
