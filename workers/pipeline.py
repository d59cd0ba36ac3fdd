"""The stages of one training run, in order: prepare (data, base model, examples), fit (the
LoRA loop with progress, metrics, checkpoints, cancel and pause/resume), publish (checked
artifact, manifest last), evaluate (candidate, base model, production), finish (evals, ready,
result file, promotion gate).

Heavy ML imports happen inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from registry.base_models.local_copy import base_model_path
from registry.errors import require
from registry.finetuning.results import write_result_file
from registry.models import AdapterVersionDataset
from registry.models.enums import DatasetRole
from registry.training.lifecycle import lifecycle
from registry.training.repository import PlatformJobRepository
from registry.training.service import add_event
from workers.checkpoints import load_state, record_metrics, save_checkpoint, store_pause
from workers.context import WorkerContext
from workers.gate import record_and_decide
from workers.heartbeat import Heartbeat
from workers.inputs import JobInputError, JobInputs, read_rows, rows_digest
from workers.publish import check_adapter, library_versions, publish
from workers.scoring import Scored, score_all

log = structlog.get_logger(__name__)


class Cancelled(Exception):
    pass


class LeaseLost(Exception):
    pass


class Paused(Exception):
    """The run stopped at a step and its state is stored: the job waits for a resume."""


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
    rehearsal_rows: int = 0
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
    tenant_rows = len(train_rows)
    if inputs.rehearsal is not None:  # ops' rows, after the split: never in the held-out set
        from workers.training.rehearsal import pick, rehearsal_count

        wanted = rehearsal_count(len(train_rows), inputs.rehearsal_ratio)
        mixed = pick(read_rows(run.ctx.store, inputs.rehearsal), wanted, seed=cfg["seed"])
        run.rehearsal_rows = len(mixed)
        train_rows = train_rows + mixed
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
        train_rows=tenant_rows,
        heldout_rows=len(run.heldout_rows),
        heldout_source="validation dataset" if inputs.validation else "seeded split",
        rehearsal_rows=run.rehearsal_rows,
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
    from workers.checkpoints import metrics_due
    from workers.training.loop import PAUSE, LoopConfig, Progress, StepAnswer, train
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

    resume = load_state(run.ctx, run.inputs)
    keep = run.inputs.job.keep_checkpoints

    def on_step(p: Progress) -> StepAnswer:
        run.metrics["progress"] = _progress(p)
        run.heart.update(run.metrics["progress"])
        if metrics_due(p):
            record_metrics(run.ctx, run.inputs, p)
        if not run.heart.keep_going:
            return False
        return PAUSE if run.heart.pause_wanted else True

    def on_eval(p: Progress) -> None:
        run.event("eval", f"step {p.step}: eval loss {p.eval_loss:.4f}", **_progress(p))
        record_metrics(run.ctx, run.inputs, p)
        if p.improved and keep > 0:
            save_checkpoint(run.ctx, run.inputs, run.model, p, cfg)

    result = train(
        run.model,
        run.train_set,
        run.eval_set,
        loop_cfg,
        pad_id=run.pad_id,
        on_step=on_step,
        on_eval=on_eval,
        resume=resume,
    )
    if run.heart.lost:
        raise LeaseLost()
    if result.cancelled:
        raise Cancelled()
    if result.state is not None:
        run.heart.stop()
        outcome = store_pause(
            run.ctx, run.inputs, result.state, total=result.total_steps, worker=run.heart.worker
        )
        raise {"paused": Paused, "cancelled": Cancelled, "lost": LeaseLost}[outcome]()
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
        "rehearsal": _rehearsal_entry(run),
        "eval_suites": [spec.ref | {"key": spec.key} for spec in inputs.suites],
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
        if inputs.rehearsal is not None:
            session.merge(
                AdapterVersionDataset(
                    version_id=inputs.version.id,
                    dataset_id=inputs.rehearsal.id,
                    role=DatasetRole.REHEARSAL,
                )
            )
    if run.heart.lost:
        raise LeaseLost()


def _rehearsal_entry(run: Run) -> dict[str, Any] | None:
    d = run.inputs.rehearsal
    if d is None:
        return None
    return {
        "dataset_id": str(d.id),
        "name": d.name,
        "version": d.version,
        "sha256": d.sha256,
        "ratio": run.inputs.rehearsal_ratio,
        "rows_mixed": run.rehearsal_rows,
    }


def evaluate(run: Run) -> Scored:
    """Candidate, base model and production on the same held-out rows and eval suites."""
    from workers.training.evaluate import row_kinds, score

    run.stage("evaluating")
    settings, model = run.ctx.settings, run.model
    started = time.monotonic()
    run.metrics["generated"] = row_kinds(run.heldout_rows[: settings.eval_max_generate])
    batch_size = max(1, min(run.cfg["batch_size"], 16))

    def heldout() -> dict[str, float]:
        return score(
            model,
            run.tokenizer,
            run.heldout_rows,
            run.eval_set,
            batch_size=batch_size,
            pad_id=run.pad_id,
            max_generate=settings.eval_max_generate,
            max_new_tokens=settings.eval_max_new_tokens,
            schema_steps=settings.dataset_schema_steps,
        )

    scored = score_all(
        run.ctx,
        model,
        run.tokenizer,
        specs=run.inputs.suites,
        heldout=heldout,
        production=run.inputs.production,
        base_digest=run.inputs.base.digest,
        batch_size=batch_size,
        pad_id=run.pad_id,
        max_seq_length=run.cfg["max_seq_length"],
        progress=lambda label: run.stage(label),
    )
    run.metrics["eval_seconds"] = round(time.monotonic() - started, 2)
    return scored


def finish(run: Run, scores: Scored) -> None:
    inputs = run.inputs
    resumed_from = inputs.job.resume_key
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
            scored=scores,
            details={
                "heldout_rows": len(run.heldout_rows),
                "heldout_sha256": run.heldout_digest,
                "generated_rows": run.metrics["generated"],  # rows behind each metric, by kind
            },
        )
        write_result_file(session, run.ctx.store, job)
        lifecycle.succeed(
            session,
            job=job,
            result={
                "training": run.metrics["training"],
                "scores": scores.heldout,
                "suites": scores.suites.scores,
                "eval_seconds": run.metrics["eval_seconds"],
                "promoted": decision.promote,
                "decision": decision.reason,
                "manifest_digest": run.manifest_digest,
                "adapter_sha256": run.manifest["files"]["adapter_model.safetensors"]["sha256"],
            },
        )
    if resumed_from:  # the paused state is of no further use; garbage if this fails
        try:
            run.ctx.store.delete(resumed_from)
        except Exception:
            log.warning("job.state_not_deleted", key=resumed_from, exc_info=True)
