"""Eval suites on real services: versions trained on different data, the base model and
production scored on one pinned suite (the base model once); evaluate jobs; uploaded versions
scored too."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.workers.platform import Platform
from workers.devmodel.general_suite import rehearsal_rows
from workers.devmodel.golden import orders_suite
from workers.devmodel.samples import sample_rows, to_jsonl

pytestmark = pytest.mark.slow
QUICK = {"epochs": 3, "learning_rate": 0.005, "batch_size": 8, "rank": 8, "max_seq_length": 128}
ACME = "/v1/tenants/acme"


def _suite(p: Platform, name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return p.ok(
        p.http.post(
            f"{ACME}/eval-suites",
            data={"name": name},
            files={"file": (f"{name}.jsonl", to_jsonl(rows))},
            headers=p.acme,
        )
    )


def _dataset(p: Platform, name: str, seed: int, n: int = 120) -> dict[str, Any]:
    return p.ok(
        p.http.post(
            f"{ACME}/datasets",
            data={"name": name},
            files={"file": ("d.jsonl", to_jsonl(sample_rows("orders", n, seed=seed)))},
            headers=p.acme,
        )
    )


def _train(p: Platform, adapter: str, dataset: dict[str, Any]) -> dict[str, Any]:
    job = p.ok(
        p.http.post(
            f"{ACME}/training-jobs",
            json={"adapter": adapter, "dataset_ids": [dataset["id"]]},
            headers=p.acme,
        )
    )
    done = p.wait_job(job["id"])
    assert done["status"] == "succeeded", done
    return done


def _board(p: Platform, adapter: str, suite: str | None = None) -> dict[str, Any]:
    query = f"?suite={suite}" if suite else ""
    return p.ok(p.http.get(f"{ACME}/adapters/{adapter}/leaderboard{query}", headers=p.acme))


def _rows(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {(f"v{r['version']}" if r["version"] else "base"): r for r in board["rows"]}


def test_versions_on_one_pinned_suite_evaluate_jobs_and_uploads(platform: Platform) -> None:
    p = platform
    p.ok(p.http.put("/v1/base-models/tiny/evals", json={}, headers=p.ops))  # no general suite
    desk = _suite(p, "desk", orders_suite(12))
    assert desk["rows"] == 12 and desk["check_counts"] == {"json_schema": 12, "contains": 12}
    body = {"name": "board", "base_model": "tiny", "training": QUICK}
    p.ok(p.http.post(f"{ACME}/adapters", json=body, headers=p.acme))
    p.ok(
        p.http.put(f"{ACME}/adapters/board/promotion-policy", json={"mode": "auto"}, headers=p.acme)
    )
    pins = {"suites": [{"name": "desk", "version": None}]}
    p.ok(p.http.put(f"{ACME}/adapters/board/eval-suites", json=pins, headers=p.acme))

    _train(p, "board", _dataset(p, "q1", seed=1))
    second = _train(p, "board", _dataset(p, "q2", seed=3))
    assert set(second["result"]["suites"]["candidate"]) == {"desk"}

    board = _board(p, "board")
    assert board["suite"]["name"] == "desk" and board["suite"]["sha256"] == desk["sha256"]
    rows = _rows(board)
    assert [r["subject"] for r in board["rows"]] == ["version", "version", "base_model"]
    assert [r["version"] for r in board["rows"]] == [2, 1, None]  # newest first, base last
    for row in rows.values():  # like for like: every subject on the same 12 rows
        assert row["metrics"]["rows"] == 12
        assert {"pass_rate", "json_schema", "contains"} <= set(row["metrics"])
    assert any("production" in r["aliases"] for r in board["rows"])
    # the base model was scored once, by the first job; the second reused that score
    v1 = p.ok(p.http.get(f"{ACME}/adapters/board/versions/1/evals", headers=p.acme))
    v2 = p.ok(p.http.get(f"{ACME}/adapters/board/versions/2/evals", headers=p.acme))
    assert [e["subject"] for e in v1 if e["suite_id"]] == ["version", "base_model"]
    assert [e["subject"] for e in v2 if e["suite_id"]] == ["version"]
    details = v2[-1]["details"]["rows"]
    assert len(details) == 12 and {"i", "id", "passed", "checks", "output"} <= set(details[0])

    # a new suite, pinned later: an evaluate job scores an existing version on it
    _suite(p, "names", orders_suite(6, seed=202))
    pins = {"suites": [{"name": "desk", "version": None}, {"name": "names", "version": None}]}
    p.ok(p.http.put(f"{ACME}/adapters/board/eval-suites", json=pins, headers=p.acme))
    resp = p.http.post(f"{ACME}/adapters/board/versions/1/evaluate", headers=p.acme)
    assert resp.status_code == 202, resp.text
    job = p.wait_job(resp.json()["id"])
    assert job["status"] == "succeeded" and job["kind"] == "evaluate", job
    assert "scored" in [e["kind"] for e in job["events"]]
    version = p.ok(p.http.get(f"{ACME}/adapters/board/versions/1", headers=p.acme))
    assert version["status"] == "ready"
    names = _rows(_board(p, "board", "names"))
    assert names["v1"]["metrics"]["rows"] == 6 and names["base"]["metrics"]["rows"] == 6

    # an adapter trained elsewhere and uploaded is scored like one trained here
    files = {}
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        got = p.http.get(f"{ACME}/adapters/board/versions/1/files/{name}", headers=p.acme)
        files[name] = (name, got.content)
    uploaded = p.ok(p.http.post(f"{ACME}/adapters/board/versions", files=files, headers=p.acme))
    jobs = p.ok(p.http.get(f"{ACME}/training-jobs?adapter=board", headers=p.acme))["items"]
    scoring = [j for j in jobs if j["kind"] == "evaluate" and j["trigger"] == "upload"]
    assert len(scoring) == 1 and scoring[0]["version"] == uploaded["version"]
    assert p.wait_job(scoring[0]["id"])["status"] == "succeeded"
    rows = _rows(_board(p, "board"))
    same = hashlib.sha256(files["adapter_model.safetensors"][1]).hexdigest()
    assert same == uploaded["manifest"]["files"]["adapter_model.safetensors"]["sha256"]
    assert rows[f"v{uploaded['version']}"]["metrics"] == rows["v1"]["metrics"]  # same weights

    # another tenant's adapter and suites answer 404
    assert (
        p.http.get("/v1/tenants/acme/adapters/nope/leaderboard", headers=p.acme).status_code == 404
    )


def _calibrated_general_suite(base: Path, n: int) -> list[dict[str, Any]]:
    """Ops calibrate the general suite on the base model it guards: each row's bound is the
    base model's own loss on it plus a slack, measured by the scorer the workers use."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workers.devmodel.general_suite import calibrate, general_suite_rows
    from workers.evals.score import score_suite

    rows = general_suite_rows(n, seed=0, contains=False)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    scored = score_suite(
        model, tokenizer, rows, batch_size=8, pad_id=0, max_new_tokens=8, schema_steps=1000
    )
    losses = [r["loss"] for r in scored.details["rows"]]
    return calibrate(rows, losses, slack=0.5)


def _upload(p: Platform, path: str, name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    files = {"file": (f"{name}.jsonl", to_jsonl(rows))}
    return p.ok(p.http.post(path, data={"name": name}, files=files, headers=p.ops))


def _hot_adapter(p: Platform, name: str) -> None:
    training = {**QUICK, "learning_rate": 0.015, "epochs": 5}
    body = {"name": name, "base_model": "tiny", "training": training}
    p.ok(p.http.post(f"{ACME}/adapters", json=body, headers=p.acme))
    policy = {"mode": "auto"}
    p.ok(p.http.put(f"{ACME}/adapters/{name}/promotion-policy", json=policy, headers=p.acme))


def _report(label: str, job: dict[str, Any]) -> None:
    """The numbers behind the verdict, for the log (pytest -s)."""
    held, general = job["result"]["scores"], job["result"]["suites"]
    print(
        f"\n{label}: held-out eval_loss {held['candidate']['eval_loss']:.3f} "
        f"(base {held['base_model']['eval_loss']:.3f}); general pass_rate "
        f"{general['candidate']['general']['pass_rate']:.3f} "
        f"(base {general['base_model']['general']['pass_rate']:.3f}); "
        f"promoted {job['result']['promoted']}"
    )


def test_forgetting_guard_refuses_and_rehearsal_keeps(platform: Platform, tiny_base: Path) -> None:
    p = platform
    general = _upload(
        p, "/v1/platform/eval-suites", "general", _calibrated_general_suite(tiny_base, 48)
    )
    mix = _upload(p, "/v1/platform/datasets", "mix", rehearsal_rows(400, seed=0))
    guard = {
        "general_suite": {"name": "general", "version": general["version"]},
        "forgetting_tolerance": 0.1,
    }
    p.ok(p.http.put("/v1/base-models/tiny/evals", json=guard, headers=p.ops))
    orders = p.ok(
        p.http.post(
            f"{ACME}/datasets",
            data={"name": "orders-160"},
            files={"file": ("d.jsonl", to_jsonl(sample_rows("orders", 160, seed=0)))},
            headers=p.acme,
        )
    )

    # trained too hard: wins on its own held-out loss, forgot what the base model could do
    _hot_adapter(p, "hot")
    hot = _train(p, "hot", orders)
    held, suites = hot["result"]["scores"], hot["result"]["suites"]
    base_general = suites["base_model"]["general"]["pass_rate"]
    hot_general = suites["candidate"]["general"]["pass_rate"]
    _report("trained hard", hot)
    assert held["candidate"]["eval_loss"] < held["base_model"]["eval_loss"]
    assert base_general >= 0.95  # the base model passes its own general suite
    assert hot_general < base_general - 0.1
    assert not hot["result"]["promoted"]
    reason = hot["result"]["decision"]
    assert "general/pass_rate" in reason and "fell behind the base model" in reason, reason
    version = p.ok(p.http.get(f"{ACME}/adapters/hot/versions/1", headers=p.acme))
    assert version["gate"]["passed"] is False and version["gate"]["reason"] == reason
    board = _rows(_board(p, "hot", "general"))  # the base model's general suite, like for like
    assert board["v1"]["metrics"]["pass_rate"] == hot_general
    assert board["base"]["metrics"]["pass_rate"] == base_general

    # promoting it anyway is an override: refused without the scope, recorded with it
    c = p.acme_client
    narrow = p.live.token(c["client_id"], c["client_secret"], scope="adapters:read adapters:write")
    move = {"version": 1, "reason": "we accept the risk"}
    url = f"{ACME}/adapters/hot/aliases/production"
    refused = p.http.put(url, json=move, headers={"Authorization": f"Bearer {narrow}"})
    assert refused.status_code == 403 and "promotion:override" in refused.text
    p.ok(p.http.put(url, json=move, headers=p.acme))
    history = p.ok(p.http.get(url + "/history", headers=p.acme))
    assert history[-1]["override"] is True and history[-1]["to_version"] == 1
    events = p.ok(p.http.get("/v1/audit/events?action=alias.set", headers=p.ops))["items"]
    assert events[-1]["details"]["override"] is True

    # the same training with the base model's rehearsal rows mixed in keeps the general suite
    guard["rehearsal"] = {"dataset": "mix", "version": mix["version"], "ratio": 0.34}
    p.ok(p.http.put("/v1/base-models/tiny/evals", json=guard, headers=p.ops))
    _hot_adapter(p, "kept")
    kept = _train(p, "kept", orders)
    held, suites = kept["result"]["scores"], kept["result"]["suites"]
    kept_general = suites["candidate"]["general"]["pass_rate"]
    _report("with rehearsal", kept)
    assert kept["result"]["promoted"], kept["result"]["decision"]
    assert kept_general >= suites["base_model"]["general"]["pass_rate"] - 0.1
    assert held["candidate"]["eval_loss"] < held["base_model"]["eval_loss"]
    data = next(e for e in kept["events"] if e["kind"] == "data")["data"]
    assert data["rehearsal_rows"] == round(data["train_rows"] * 0.34 / 0.66) > 0
    version = p.ok(p.http.get(f"{ACME}/adapters/kept/versions/1", headers=p.acme))
    assert version["manifest"]["rehearsal"]["sha256"] == mix["sha256"]
    roles = {d["role"]: d for d in version["datasets"]}
    assert roles["rehearsal"]["sha256"] == mix["sha256"]  # the tenant sees which, and its digest
    content = p.http.get(f"/v1/platform/datasets/{mix['id']}/content", headers=p.acme)
    assert content.status_code == 403  # never its rows
    p.ok(p.http.put("/v1/base-models/tiny/evals", json={}, headers=p.ops))
