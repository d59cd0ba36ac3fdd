"""The loop closes, on real services: a scheduled tick (and then drift on live traffic) queues
a job, a Celery worker trains and evaluates it, the gate moves `production`, and the gateway
answers with the new version, equal to what PEFT computes from the files the registry holds.

Runs on the session's serving stack (registry, vLLM engine, gateway) plus Celery worker
processes on Redis; its own tenant, so the other serving tests are unaffected.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_env
from tests.serving import reference
from tests.serving.stack import CLI, ServingStack, make_peft_adapter
from tests.workers.platform import Worker
from workers.devmodel.samples import ORDERS_SYSTEM, sample_rows, to_jsonl

pytestmark = pytest.mark.slow
T, A = "initrode", "ledger"
QUICK = {"epochs": 3, "learning_rate": 0.005, "batch_size": 8, "rank": 8, "max_seq_length": 512}
PROMPT = (
    f"<|system|>\n{ORDERS_SYSTEM}<|end|>"
    "<|user|>\nPlease send 3 apples to Alice.<|end|><|assistant|>\n"
)
N = 24


class Loop:
    def __init__(self, stack: ServingStack, redis_url: str) -> None:
        self.s, self.http, self.ops = stack, stack.http, stack.ops
        self.env = {
            **stack.env,
            "LORAPLEX_BROKER_URL": redis_url,
            "LORAPLEX_EVAL_MAX_GENERATE": "16",
        }
        self.worker = Worker(self.env, stack.live.home / "retrain-worker.log")
        self.s.ok(
            self.http.post(
                "/v1/tenants", json={"slug": T, "display_name": "Initrode"}, headers=self.ops
            )
        )
        client = self.s.ok(self.http.post(f"/v1/tenants/{T}/clients", json={}, headers=self.ops))
        stack.tokens[T] = self.h = stack.live.bearer(client["client_id"], client["client_secret"])

    def url(self, path: str = "") -> str:
        return f"/v1/tenants/{T}/adapters/{A}{path}"

    def cli(self, *args: str) -> Any:
        out = subprocess.run(
            [*CLI, *args], env=self.env, capture_output=True, text=True, timeout=120, check=False
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout)

    def wait_job(self, job_id: str, timeout: float = 420) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.s.ok(
                self.http.get(f"/v1/tenants/{T}/training-jobs/{job_id}", headers=self.h)
            )
            if job["status"] in {"succeeded", "failed", "cancelled"}:
                return job
            time.sleep(1)
        log = (self.s.live.home / "retrain-worker.log").read_text(errors="replace")
        raise AssertionError(f"job {job_id} still {job['status']}:\n{log[-4000:]}")

    def complete(
        self, model: str = A, prompt: str = PROMPT, max_tokens: int = N
    ) -> tuple[str, str]:
        raw = self.s.openai(T).completions.with_raw_response.create(
            model=model, prompt=prompt, max_tokens=max_tokens, temperature=0
        )
        return raw.parse().choices[0].text, raw.headers["x-loraplex-model"]

    def serves(self, label: str, timeout: float = 3.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text, got = self.complete()
            if got == label or time.monotonic() > deadline:
                assert got == label, f"gateway still answers with {got}"
                return text
            time.sleep(0.1)

    def download(self, version: int, into: Path) -> Path:
        meta = self.s.ok(self.http.get(self.url(f"/versions/{version}"), headers=self.h))
        into.mkdir(parents=True)
        for name in meta["manifest"]["files"]:
            resp = self.http.get(self.url(f"/versions/{version}/files/{name}"), headers=self.h)
            assert resp.status_code == 200, resp.text
            (into / name).write_bytes(resp.content)
        return into

    def lineage(self, version: int) -> dict[str, Any]:
        return self.s.ok(self.http.get(self.url(f"/versions/{version}/lineage"), headers=self.h))


@pytest.fixture(scope="module")
def loop(serving: ServingStack) -> Iterator[Loop]:
    live = Loop(serving, require_env("LORAPLEX_TEST_REDIS_URL"))
    try:
        yield live
    finally:
        live.worker.stop()


def _trigger(lineage: dict[str, Any], job_id: str) -> dict[str, Any]:
    """The trigger node the job `wasInformedBy` (the parent chain brings its own triggers)."""
    [target] = [
        e["target"]
        for e in lineage["edges"]
        if e["source"] == f"job:{job_id}" and e["relation"] == "wasInformedBy"
    ]
    [node] = [n for n in lineage["nodes"] if n["id"] == target]
    assert node["type"] == "trigger"
    return node


def test_a_scheduled_retrain_reaches_the_gateway(
    loop: Loop, tiny_base: Path, tmp_path: Path
) -> None:
    s = loop.s
    s.ok(
        s.http.post(
            f"/v1/tenants/{T}/adapters",
            json={"name": A, "base_model": "tiny", "training": QUICK},
            headers=loop.h,
        )
    )
    s.ok(s.http.put(loop.url("/promotion-policy"), json={"mode": "auto"}, headers=loop.h))
    s.upload(T, A, make_peft_adapter(tiny_base, tmp_path / "v1", seed=11))  # far from trained
    s.promote(T, A, 1)
    rows = to_jsonl(sample_rows("orders", 160, seed=1))
    s.ok(
        s.http.post(
            f"/v1/tenants/{T}/datasets",
            data={"name": "ledger-data"},
            files={"file": ("d.jsonl", rows)},
            headers=loop.h,
        )
    )
    before, label = loop.complete()
    assert label == f"{A}@v1"

    # Ops: every quarter at 03:00 Berlin time. Run the tick by hand at the next due time.
    schedule = s.ok(
        s.http.put(
            loop.url("/schedule"),
            json={
                "cron": "0 3 1 1,4,7,10 *",
                "timezone": "Europe/Berlin",
                "dataset_names": ["ledger-data"],
            },
            headers=s.ops,
        )
    )
    due = dt.datetime.fromisoformat(schedule["next_run_at"])
    assert due.astimezone(dt.UTC).hour in (1, 2)  # 03:00 CET or CEST
    tick = loop.cli("schedules", "tick", "--now", (due + dt.timedelta(seconds=30)).isoformat())
    [job_id] = tick["queued"]

    job = loop.wait_job(job_id)
    assert job["status"] == "succeeded", (job["error"], job["events"][-4:])
    assert job["trigger"] == "schedule" and job["trigger_ref"]["due_at"] == due.isoformat()
    assert [e["kind"] for e in job["events"]][-2:] == ["promoted", "succeeded"], job["events"]

    # Within a second the gateway answers with v2: token for token what PEFT computes from the
    # files the registry serves, and not what v1 said.
    text = loop.serves(f"{A}@v2")
    assert text == reference.greedy(tiny_base, loop.download(2, tmp_path / "v2"), PROMPT, N)
    assert text != before

    # Lineage: the schedule that fired, the job, the data, the evals, the promotion.
    lineage = loop.lineage(2)
    trigger = _trigger(lineage, job_id)
    assert (
        trigger["attrs"]["kind"] == "schedule"
        and trigger["attrs"]["schedule"]["timezone"] == "Europe/Berlin"
    )
    types = {n["type"] for n in lineage["nodes"]}
    assert {"dataset", "eval", "alias_event", "job", "trigger"} <= types
    events = s.ok(s.http.get(f"/v1/audit/events?tenant={T}", headers=s.ops))["items"]
    actions = {e["action"] for e in events}
    assert {"schedule.set", "schedule.fired", "training_job.create"} <= actions
    after = s.ok(s.http.get(loop.url("/schedule"), headers=loop.h))
    assert after["last_outcome"] == "queued" and after["last_job_id"] == job_id
    assert dt.datetime.fromisoformat(after["next_run_at"]) > due


def test_drift_on_gateway_traffic_retrains_once(loop: Loop) -> None:
    s = loop.s
    s.ok(
        s.http.put(
            loop.url("/drift-policy"),
            json={
                "window": "1h",
                "min_samples": 40,
                "cooldown": "1d",
                "dataset_names": ["ledger-data"],
            },
            headers=s.ops,
        )
    )
    # The tenant's users start writing very differently; the tenant uploads new data too.
    shifted = sample_rows("orders", 160, seed=2, shift=True)
    s.ok(
        s.http.post(
            f"/v1/tenants/{T}/datasets",
            data={"name": "ledger-data"},
            files={"file": ("d.jsonl", to_jsonl(shifted))},
            headers=loop.h,
        )
    )
    client = s.openai(T)
    for row in shifted[:48]:
        user = [m for m in row["messages"] if m["role"] != "assistant"]
        raw = client.chat.completions.with_raw_response.create(
            model=A, messages=user, max_tokens=1, temperature=0
        )
        assert raw.headers["x-loraplex-model"] == f"{A}@v2"
    time.sleep(1.0)  # the gateway writes its traffic samples in batches (0.2 s here)

    [entry] = loop.cli("drift", "compute", "--tenant", T, "--adapter", A)
    measured = {m["version"]: m for m in entry["versions"]}
    assert measured[2]["samples"] >= 48  # and the first test's last requests
    assert measured[1] == {"version": 1, "skipped": "no training data"}  # v1 was uploaded
    assert entry["decision"]["outcome"] == "triggered", entry
    job_id = entry["decision"]["job_id"]
    # A second pass right away: still drifted, but within the cooldown.
    [again] = loop.cli("drift", "compute", "--tenant", T, "--adapter", A)
    assert again["decision"]["outcome"] == "cooldown"

    job = loop.wait_job(job_id)
    assert job["status"] == "succeeded", (job["error"], job["events"][-4:])
    assert job["trigger"] == "drift" and job["version"] == 3
    jobs = s.ok(s.http.get(f"/v1/tenants/{T}/training-jobs?adapter={A}", headers=loop.h))["items"]
    assert sorted(j["trigger"] for j in jobs) == ["drift", "schedule"]
    lineage = loop.lineage(3)
    trigger = _trigger(lineage, job_id)
    assert trigger["attrs"]["kind"] == "drift"
    kinds = sorted(n["attrs"]["kind"] for n in lineage["nodes"] if n["type"] == "trigger")
    assert kinds == ["drift", "schedule"]  # v3's own, and its parent v2's
    assert trigger["attrs"]["drift"]["metric"] == "prompt_length_psi"
    assert trigger["attrs"]["drift"]["value"] > trigger["attrs"]["drift"]["threshold"] == 0.2
    assert trigger["attrs"]["drift"]["served_version"] == 2
    # Whatever the gate decided, the gateway serves what `production` names.
    production = s.ok(s.http.get(loop.url("/aliases"), headers=loop.h))
    serving_version = {a["alias"]: a["version"] for a in production}["production"]
    assert loop.serves(f"{A}@v{serving_version}")
