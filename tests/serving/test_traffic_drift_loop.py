"""The drift loop is no longer hollow, on real services: v1 learnt the order desk's usual
requests; its users start writing long rambling messages it gets wrong; full capture keeps the
traces, the tenant corrects the answers through the gateway's `POST /v1/feedback`; the drift
pass fires and retrains on the curated traffic; v2 scores clearly better than v1 on a suite of
shifted prompts, the gate promotes it, the gateway serves it, and its lineage shows the traffic.

Runs on the session's serving stack plus a Celery worker on Redis; its own tenant.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import require_env
from tests.serving.stack import CLI, ServingStack
from tests.workers.platform import Worker
from workers.devmodel.samples import sample_rows, to_jsonl

pytestmark = pytest.mark.slow
T, A, SUITE = "umbrella", "desk", "rambling-orders"
QUICK = {
    "epochs": 6,
    "learning_rate": 0.005,
    "batch_size": 8,
    "rank": 16,
    "alpha": 32,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "max_seq_length": 384,
}
TRAFFIC = 48
# The tiny base model cannot write these answers outright after a short run: the suite scores
# the likelihood of the right answer (mean loss per token, lower is better; a row passes below
# MAX_LOSS). Measured on the dev machine: v1 about 4.0, v2 about 3.2.
MAX_LOSS = 3.5
GATE_MARGIN = 0.2  # the promotion gate's, in mean loss
MARGIN = 0.4  # what this test asks of v2 over v1


class TrafficLoop:
    def __init__(self, stack: ServingStack, redis_url: str) -> None:
        self.s, self.http, self.ops = stack, stack.http, stack.ops
        self.env = {
            **stack.env,
            "LORAPLEX_BROKER_URL": redis_url,
            "LORAPLEX_EVAL_MAX_GENERATE": "2",
            "LORAPLEX_EVAL_MAX_NEW_TOKENS": "32",
        }
        self.log = stack.live.home / "traffic-worker.log"
        self.worker = Worker(self.env, self.log)
        self.s.ok(
            self.http.post(
                "/v1/tenants", json={"slug": T, "display_name": "Umbrella"}, headers=self.ops
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

    def upload(self, kind: str, name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return self.s.ok(
            self.http.post(
                f"/v1/tenants/{T}/{kind}",
                data={"name": name},
                files={"file": (f"{name}.jsonl", to_jsonl(rows))},
                headers=self.h,
            )
        )

    def wait_job(self, job_id: str, timeout: float = 400) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.s.ok(
                self.http.get(f"/v1/tenants/{T}/training-jobs/{job_id}", headers=self.h)
            )
            if job["status"] in {"succeeded", "failed", "cancelled"}:
                return job
            time.sleep(1)
        raise AssertionError(f"job {job_id} still {job['status']}:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def chat(self, messages: list[dict[str, Any]]) -> tuple[str, str, str]:
        """(answer, request id, the version that answered)."""
        raw = self.s.openai(T).chat.completions.with_raw_response.create(
            model=A, messages=messages, max_tokens=8, temperature=0
        )
        answer = raw.parse().choices[0].message.content or ""
        return answer, raw.headers["x-request-id"], raw.headers["x-loraplex-model"]

    def feedback(self, body: dict[str, Any]) -> dict[str, Any]:
        resp = httpx.post(
            f"{self.s.gateway_url}/v1/feedback", json=body, headers=self.h, timeout=30
        )
        assert resp.status_code in (200, 201), resp.text
        out: dict[str, Any] = resp.json()
        return out

    def scores(self) -> dict[int, dict[str, float]]:
        board = self.s.ok(self.http.get(self.url(f"/leaderboard?suite={SUITE}"), headers=self.h))
        return {r["version"]: r["metrics"] for r in board["rows"] if r["version"]}


@pytest.fixture(scope="module")
def loop(serving: ServingStack) -> Iterator[TrafficLoop]:
    live = TrafficLoop(serving, require_env("LORAPLEX_TEST_REDIS_URL"))
    try:
        yield live
    finally:
        live.worker.stop()


def _suite(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Shifted prompts, each scored by the likelihood of its right answer."""
    out = []
    for i, row in enumerate(rows):
        *prompt, answer = row["messages"]
        check = {"type": "loss", "reference": answer["content"], "max_loss": MAX_LOSS}
        out.append({"id": f"rambling-{i:02d}", "messages": prompt, "checks": [check]})
    return out


def test_drift_retrains_on_corrected_traffic_and_the_new_version_wins(loop: TrafficLoop) -> None:
    s, started = loop.s, time.monotonic()
    s.ok(
        s.http.post(
            f"/v1/tenants/{T}/adapters",
            json={"name": A, "base_model": "tiny", "training": QUICK},
            headers=loop.h,
        )
    )
    loop.upload("eval-suites", SUITE, _suite(sample_rows("orders", 24, seed=301, shift=True)))
    pins = {"suites": [{"name": SUITE, "version": None}]}
    s.ok(s.http.put(loop.url("/eval-suites"), json=pins, headers=loop.h))

    # v1: trained here on the desk's usual, short requests; a person promotes it.
    usual = loop.upload("datasets", "desk-orders", sample_rows("orders", 160, seed=1))
    job = s.ok(
        s.http.post(
            f"/v1/tenants/{T}/training-jobs",
            json={"adapter": A, "dataset_ids": [usual["id"]]},
            headers=loop.h,
        )
    )
    done = loop.wait_job(job["id"])
    assert done["status"] == "succeeded", (done["error"], done["events"][-4:])
    s.promote(T, A, 1)
    primary = {"suite": SUITE, "metric": "mean_loss"}
    policy = {"mode": "auto", "primary": primary, "margin": GATE_MARGIN}
    s.ok(s.http.put(loop.url("/promotion-policy"), json=policy, headers=loop.h))
    capture = {"mode": "full", "sample_rate": 1.0, "retention": "7d"}
    s.ok(s.http.put(loop.url("/traffic-capture"), json=capture, headers=loop.h))
    time.sleep(1.5)  # the gateway reads capture settings with the route (cached <= 1 s here)

    # The users start rambling; the desk corrects every answer v1 got wrong.
    corrected = approved = 0
    for row in sample_rows("orders", TRAFFIC, seed=302, shift=True):
        *prompt, answer = row["messages"]
        said, request_id, model = loop.chat(prompt)
        assert model == f"{A}@v1"
        if said.strip() == answer["content"]:
            approved += 1
            body: dict[str, Any] = {"request_id": request_id, "rating": 1}
        else:
            corrected += 1
            body = {"request_id": request_id, "rating": -1, "correction": answer}
        got = loop.feedback(body)
        assert got["request_id"] == request_id and got["version"] == 1, got
    time.sleep(1.0)  # traces are written in batches
    page = s.ok(s.http.get(f"/v1/tenants/{T}/traces?adapter={A}&limit=100", headers=loop.h))
    full = [t for t in page["items"] if t["captured"] == "full" and t["feedback"]]
    assert len(full) == TRAFFIC and all(t["trace"]["response"] for t in full), page["items"][:1]

    s.ok(
        s.http.put(
            loop.url("/drift-policy"),
            json={"datasets": "traffic", "window": "1h", "min_samples": 40, "cooldown": "1d"},
            headers=s.ops,
        )
    )
    [entry] = loop.cli("drift", "compute", "--tenant", T, "--adapter", A)
    assert entry["decision"]["outcome"] == "triggered", entry
    job = loop.wait_job(entry["decision"]["job_id"])
    assert job["status"] == "succeeded", (job["error"], job["events"][-4:], loop.tail())
    assert job["trigger"] == "drift" and job["version"] == 2
    traffic = job["trigger_ref"]["traffic"]
    assert traffic["rows"] == TRAFFIC and traffic["corrected"] == corrected
    assert traffic["uploaded"] == [{"name": "desk-orders", "version": 1}]

    scores = loop.scores()
    v1, v2 = scores[1], scores[2]
    print(
        f"\nshifted suite: mean loss v1 {v1['mean_loss']:.3f}, v2 {v2['mean_loss']:.3f}; "
        f"pass rate (loss < {MAX_LOSS}) v1 {v1['pass_rate']:.3f}, v2 {v2['pass_rate']:.3f} "
        f"({corrected} corrected, {approved} approved of {TRAFFIC} requests; "
        f"{time.monotonic() - started:.0f} s)"
    )
    assert v2["mean_loss"] <= v1["mean_loss"] - MARGIN, scores
    assert v2["pass_rate"] > v1["pass_rate"], scores
    assert [e["kind"] for e in job["events"]][-2:] == ["promoted", "succeeded"], job["events"]
    deadline = time.monotonic() + 5
    while (model := loop.chat(prompt)[2]) != f"{A}@v2" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert model == f"{A}@v2"

    lineage = s.ok(s.http.get(loop.url("/versions/2/lineage"), headers=loop.h))
    [trigger] = [n for n in lineage["nodes"] if n["type"] == "trigger"]
    assert trigger["attrs"]["kind"] == "drift"
    assert trigger["attrs"]["traffic"]["dataset_id"] == traffic["dataset_id"]
    [node] = [n for n in lineage["nodes"] if n["type"] == "traffic"]
    assert node["id"] == f"traffic:{traffic['dataset_id']}"
