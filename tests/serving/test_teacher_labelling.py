"""Teacher labelling on the real serving stack: the teacher is the platform's own gateway
serving another tenant's adapter (its client token is the teacher's key, in the registry's
secrets folder), the student's traffic prompts go to it through the registry's worker, and
only the answers that pass the student's pinned suite-wide check become a dataset. A teacher
that accepts connections and never answers fails the job and stores nothing."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.live import BUCKET
from tests.serving.conftest import Adapters
from tests.serving.stack import ServingStack, make_peft_adapter
from tests.workers.teacher_server import silent_socket

pytestmark = pytest.mark.slow
PROMPTS = [
    "Please send 3 apples to Alice.",
    "What is the weather like today?",
    "Tell me a story about a dragon.",
    "How do I reset my password?",
    "List three colours.",
    "Where is my order?",
    "Write a haiku about the sea.",
    "Who wrote Hamlet?",
    "Cancel my subscription please.",
    "What time is it in Tokyo?",
]
MAX_TOKENS = 16


def tenant(stack: ServingStack, slug: str) -> str:
    made = stack.ok(
        stack.http.post("/v1/tenants", json={"slug": slug, "display_name": slug}, headers=stack.ops)
    )
    client = stack.ok(stack.http.post(f"/v1/tenants/{slug}/clients", json={}, headers=stack.ops))
    stack.tokens[slug] = stack.live.bearer(client["client_id"], client["client_secret"])
    return str(made["id"])


def splitting_word(answers: list[str]) -> str:
    """A word some answers contain and others do not (the most even split)."""
    counts = Counter(w for a in answers for w in set(a.split()))
    best = min(counts, key=lambda w: (abs(2 * counts[w] - len(answers)), w))
    assert 0 < counts[best] < len(answers), f"no word splits the answers: {answers}"
    return best


def wait(stack: ServingStack, slug: str, job_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = stack.ok(
            stack.http.get(
                f"/v1/tenants/{slug}/labelling-jobs/{job_id}", headers=stack.tokens[slug]
            )
        )
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job  # type: ignore[no-any-return]
        time.sleep(0.5)
    log = (stack.live.home / "registry.log").read_text(errors="replace")
    raise AssertionError(f"labelling job {job_id} still {job['status']}:\n{log[-4000:]}")


def dataset_objects(stack: ServingStack, tenant_id: str) -> list[str]:
    prefix = f"{stack.prefix}/tenants/{tenant_id}/datasets/"
    listed = stack.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_a_teacher_on_the_gateway_labels_traffic_and_a_silent_one_fails(
    serving: ServingStack, adapters: Adapters, tiny_base: Path, tmp_path: Path
) -> None:
    s = serving
    # The teacher: another tenant's adapter, served by the gateway.
    tenant(s, "sensei")
    s.create_adapter("sensei", "wise")
    s.upload("sensei", "wise", make_peft_adapter(tiny_base, tmp_path / "wise", seed=11))
    s.promote("sensei", "wise", 1)
    teacher = s.openai("sensei")
    answers = {}
    for p in PROMPTS:
        done = teacher.chat.completions.create(
            model="wise",
            messages=[{"role": "user", "content": p}],
            temperature=0,
            max_tokens=MAX_TOKENS,
        )
        answers[p] = done.choices[0].message.content or ""
    word = splitting_word([a for a in answers.values() if a.strip()])
    print("teacher answers:", json.dumps(answers, indent=1), "\nsplitting word:", repr(word))

    # The student: its traffic, and a pinned suite whose every row requires `word`.
    student_id = tenant(s, "pupil")
    h = s.tokens["pupil"]
    s.create_adapter("pupil", "student")
    s.upload("pupil", "student", adapters.orders_v1)
    s.promote("pupil", "student", 1)
    rule = {"type": "contains", "value": word}
    suite = "".join(
        json.dumps({"messages": [{"role": "user", "content": f"suite {i}"}], "checks": [rule]})
        + "\n"
        for i in range(3)
    )
    s.ok(
        s.http.post(
            "/v1/tenants/pupil/eval-suites",
            data={"name": "voice"},
            files={"file": ("voice.jsonl", suite.encode())},
            headers=h,
        )
    )
    s.ok(
        s.http.put(
            "/v1/tenants/pupil/adapters/student/eval-suites",
            json={"suites": [{"name": "voice"}]},
            headers=h,
        )
    )
    samples = [{"messages": [{"role": "user", "content": p}]} for p in PROMPTS]
    s.ok(
        s.http.post(
            "/v1/tenants/pupil/traffic", json={"adapter": "student", "samples": samples}, headers=h
        )
    )

    # The teacher's key: the sensei client's token, in the registry's secrets folder.
    secrets = s.live.home / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "SENSEI_TOKEN").write_text(s.tokens["sensei"]["Authorization"].split(" ", 1)[1])
    s.ok(
        s.http.post(
            "/v1/teachers",
            json={
                "name": "sensei",
                "base_url": f"{s.gateway_url}/v1",
                "model": "wise",
                "secret_name": "SENSEI_TOKEN",
                "requests_per_minute": 6000,
                "max_tokens": MAX_TOKENS,
            },
            headers=s.ops,
        )
    )
    job = s.ok(
        s.http.post(
            "/v1/tenants/pupil/adapters/student/labelling-jobs",
            json={"teacher": "sensei", "dataset": "taught", "window": "1h"},
            headers=h,
        )
    )
    done = wait(s, "pupil", job["id"])
    print("labelling job:", json.dumps(done["progress"]))
    assert done["status"] == "succeeded", done["error"]
    p = done["progress"]
    assert p["sent"] == len(PROMPTS) and p["kept"] > 0 and p["refused"] > 0
    assert p["refused_by"].get("contains", 0) > 0
    content = s.http.get(f"/v1/tenants/pupil/datasets/{done['dataset_id']}/content", headers=h)
    rows = [json.loads(line) for line in content.text.splitlines() if line.strip()]
    assert len(rows) == p["kept"]
    for row in rows:
        prompt, reply = row["messages"][0]["content"], row["messages"][-1]["content"]
        assert word in reply and reply == answers[prompt]  # the teacher's own answer, kept
    expected = {q for q, a in answers.items() if word in a and a.strip()}
    assert {r["messages"][0]["content"] for r in rows} == expected
    dataset = s.ok(s.http.get(f"/v1/tenants/pupil/datasets/{done['dataset_id']}", headers=h))
    assert dataset["origin"]["kind"] == "teacher" and dataset["origin"]["model"] == "wise"

    # A teacher that accepts the connection and never answers: failed, nothing stored.
    before = (
        s.ok(s.http.get("/v1/tenants/pupil/datasets", headers=h))["items"],
        dataset_objects(s, student_id),
    )
    with silent_socket() as url:
        s.ok(
            s.http.post(
                "/v1/teachers",
                json={
                    "name": "mute",
                    "base_url": url,
                    "model": "m",
                    "timeout_seconds": 1,
                    "max_retries": 1,
                },
                headers=s.ops,
            )
        )
        job = s.ok(
            s.http.post(
                "/v1/tenants/pupil/adapters/student/labelling-jobs",
                json={"teacher": "mute", "dataset": "muted", "window": "1h"},
                headers=h,
            )
        )
        failed = wait(s, "pupil", job["id"], timeout=60)
    assert failed["status"] == "failed"
    assert "teacher 'mute' did not answer: timed out after 1 s (2 tries)" in failed["error"]
    assert failed["dataset_id"] is None
    after = (
        s.ok(s.http.get("/v1/tenants/pupil/datasets", headers=h))["items"],
        dataset_objects(s, student_id),
    )
    assert after == before
