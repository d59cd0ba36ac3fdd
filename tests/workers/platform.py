"""A live platform for worker tests: registry process + Celery worker processes (with beat) on
PostgreSQL, Redis and the S3 server, the tiny base model stored in S3 and registered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import httpx

from tests.live import BUCKET, LiveRegistry, start_registry
from tests.services import AWS_ENV, _die_with

CLI = [sys.executable, "-m", "cli"]
DONE = {"succeeded", "failed", "cancelled"}


def small_build_options(steps: int, synthetic_share: float = 0.0) -> Any:
    """The tests' small model: by default corpus text only, 60 steps of 16 x 128 tokens
    (about 25 s).

    So few steps on the copy-heavy synthetic mix of the demo's model leave a model that answers
    every prompt with newlines, and the serving tests need outputs that differ per adapter.
    """
    from workers.devmodel.build import BuildOptions

    return BuildOptions(
        pretrain_steps=steps, synthetic_share=synthetic_share, seq_length=128, batch_size=16
    )


def base_model_cache(steps: int, synthetic_share: float = 0.0) -> Path:
    """Built once per build fingerprint (builder, corpus, synthetic text, options), reused
    across local runs."""
    from workers.devmodel.build import build_fingerprint

    key = build_fingerprint(small_build_options(steps, synthetic_share))[:16]
    root = Path(os.environ.get("LORAPLEX_TEST_CACHE", Path.home() / ".cache" / "loraplex-tests"))
    return root / f"tiny-base-{key}"


def tiny_base_model(steps: int = 60, synthetic_share: float = 0.0) -> Path:
    from workers.devmodel.build import build_base_model

    path = base_model_cache(steps, synthetic_share)
    if not (path / "model.safetensors").exists():
        build_base_model(path, small_build_options(steps, synthetic_share), force=True)
    return path


class Worker:
    """`loraplex worker` (or, with beat=True, `loraplex beat`) as a child process."""

    def __init__(self, env: dict[str, str], log: Path, *, beat: bool = False) -> None:
        self.log = log
        cmd = (
            [*CLI, "beat"] if beat else [*CLI, "worker", "--pool", "threads", "--concurrency", "2"]
        )
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd,
                env=env,
                cwd=log.parent,  # beat writes its schedule file here
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with(signal.SIGKILL),
            )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


class Platform:
    def __init__(self, pg_admin_url: str, s3_endpoint: str, redis_url: str, base: Path) -> None:
        env = {
            "LORAPLEX_BROKER_URL": redis_url,
            "LORAPLEX_JOB_LEASE_SECONDS": "4",
            "LORAPLEX_REAPER_INTERVAL_SECONDS": "2",
            "LORAPLEX_JOB_RETRY_BACKOFF_SECONDS": "1",
            "LORAPLEX_EVAL_MAX_GENERATE": "16",
        }
        self.live: LiveRegistry = start_registry(pg_admin_url, s3_endpoint, extra_env=env)
        self.workers: list[Worker] = []
        self.beat = Worker(self.live.env, self.live.home / "beat.log", beat=True)  # the reaper
        self.http = self.live.http(timeout=60)
        self.ops = self.live.bearer()
        self.s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **_creds())
        self.prefix = self.live.env["LORAPLEX_OBJECT_STORE"].removeprefix(f"s3://{BUCKET}/")
        self.start_worker()
        for f in sorted(base.iterdir()):
            self.s3.put_object(Bucket=BUCKET, Key=f"base-models/tiny/{f.name}", Body=f.read_bytes())
        self.ok(
            self.http.post(
                "/v1/base-models",
                json={"name": "tiny", "uri": f"s3://{BUCKET}/base-models/tiny"},
                headers=self.ops,
            )
        )
        self.ok(
            self.http.post(
                "/v1/tenants", json={"slug": "acme", "display_name": "Acme"}, headers=self.ops
            )
        )
        client = self.ok(self.http.post("/v1/tenants/acme/clients", json={}, headers=self.ops))
        self.acme_client: dict[str, str] = client
        self.acme = self.live.bearer(client["client_id"], client["client_secret"])

    def start_worker(self) -> Worker:
        worker = Worker(self.live.env, self.live.home / "worker.log")
        self.workers.append(worker)
        return worker

    @staticmethod
    def ok(resp: httpx.Response) -> Any:
        assert resp.status_code < 300, f"{resp.status_code}: {resp.text}"
        return resp.json()

    def wait_job(
        self, job_id: str, until: set[str] = DONE, timeout: float = 300, step: int | None = None
    ) -> dict[str, Any]:
        """Poll until the job's status is in `until` (and, with `step`, it reached that step)."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.ok(
                self.http.get(f"/v1/tenants/acme/training-jobs/{job_id}", headers=self.acme)
            )
            if job["status"] in until and (step is None or job["progress"].get("step", 0) >= step):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"job still {job['status']} after {timeout}s:\n{job}\n"
                    + self.worker_log()[-4000:]
                )
            time.sleep(0.25)

    def worker_log(self) -> str:
        return (self.live.home / "worker.log").read_text(errors="replace")

    def objects(self, prefix: str) -> list[str]:
        out, token = [], None
        while True:
            kw = {"ContinuationToken": token} if token else {}
            page = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{self.prefix}/{prefix}", **kw)
            out += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return out
            token = page["NextContinuationToken"]

    def close(self) -> None:
        for worker in [*self.workers, self.beat]:
            worker.stop()
        self.http.close()
        self.live.stop()


def _creds() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_ENV.get("AWS_ACCESS_KEY_ID", "testing"),
        "aws_secret_access_key": AWS_ENV.get("AWS_SECRET_ACCESS_KEY", "testing"),
    }
