"""The demo's training part: build and register the tiny base model, train acme's adapter in
the embedded worker, follow it with a progress bar, show the evals and the promotion."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()


def base_model_dir() -> Path:
    """Built once per machine (about two minutes on two cores), then reused."""
    root = Path(os.environ.get("LORAPLEX_DEMO_CACHE", Path.home() / ".cache" / "loraplex"))
    return root / "tiny-chat-base"


def ensure_base_model(env: dict[str, str]) -> Path:
    path = base_model_dir()
    if (path / "model.safetensors").exists():
        console.print(f"tiny base model already built at {path}")
        return path
    exe = [sys.executable, "-m", "registry.cli.__main__", "dev", "make-base-model", str(path)]
    subprocess.run([*exe, "--force"], env=env, check=True)
    return path


def _ok(resp: httpx.Response) -> Any:
    if not resp.is_success:
        raise SystemExit(f"{resp.request.method} {resp.request.url.path}: {resp.text}")
    return resp.json()


def follow_job(base: str, headers: dict[str, str], tenant: str, job_id: str) -> dict[str, Any]:
    url = f"{base}/v1/tenants/{tenant}/training-jobs/{job_id}"
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[losses]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("queued", total=None, losses="")
        while True:
            job = _ok(httpx.get(url, headers=headers, timeout=30))
            p = job["progress"]
            losses = ""
            if "train_loss" in p:
                losses = f"train {p['train_loss']:.3f}"
                if p.get("eval_loss") is not None:
                    losses += f"  eval {p['eval_loss']:.3f}"
                losses += f"  {p.get('tokens_per_second', 0):.0f} tok/s"
            progress.update(
                task,
                description=p.get("stage", job["status"]),
                completed=p.get("step", 0),
                total=p.get("total_steps"),
                losses=losses,
            )
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(0.5)


def walkthrough(
    base: str, env: dict[str, str], ops_h: dict[str, str], acme_h: dict[str, str]
) -> None:
    from workers.devmodel.samples import sample_rows, to_jsonl

    path = ensure_base_model(env)
    _ok(
        httpx.post(
            f"{base}/v1/base-models",
            json={"name": "tiny-chat", "uri": str(path)},
            headers=ops_h,
            timeout=60,
        )
    )
    console.print(f"registered base model tiny-chat from {path}")
    data = _ok(
        httpx.post(
            f"{base}/v1/tenants/acme/datasets",
            data={"name": "orders"},
            files={"file": ("orders.jsonl", to_jsonl(sample_rows("orders", 300, seed=0)))},
            headers=acme_h,
            timeout=60,
        )
    )
    training = {"rank": 8, "epochs": 3, "learning_rate": 0.003, "max_seq_length": 128}
    _ok(
        httpx.post(
            f"{base}/v1/tenants/acme/adapters",
            json={"name": "orders", "base_model": "tiny-chat", "training": training},
            headers=acme_h,
        )
    )
    _ok(
        httpx.put(
            f"{base}/v1/tenants/acme/adapters/orders/promotion-policy",
            json={"mode": "auto", "primary_metric": "eval_loss", "margin": 0.0},
            headers=acme_h,
        )
    )
    job = _ok(
        httpx.post(
            f"{base}/v1/tenants/acme/training-jobs",
            json={"adapter": "orders", "dataset_ids": [data["id"]]},
            headers=acme_h,
        )
    )
    console.print(f"training job {job['id']} queued for orders v{job['version']}")
    done = follow_job(base, acme_h, "acme", job["id"])
    events = Table("event", "message")
    for e in done["events"]:
        if e["kind"] != "eval":
            events.add_row(e["kind"], e["message"][:110])
    console.print(events)
    scores = done["result"].get("scores", {})
    table = Table("metric", *scores)
    for metric in ("eval_loss", "perplexity", "exact_match", "json_valid"):
        if all(metric in s for s in scores.values()):
            table.add_row(metric, *(f"{s[metric]:.4f}" for s in scores.values()))
    console.print(table)
    aliases = _ok(httpx.get(f"{base}/v1/tenants/acme/adapters/orders/aliases", headers=acme_h))
    console.print({a["alias"]: f"v{a['version']}" for a in aliases})
