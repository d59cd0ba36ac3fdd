"""The drift pass on real PostgreSQL and the S3 server: metrics from traffic against the
training prompts of the version that served it, and the policy deciding on them."""

from __future__ import annotations

import threading
from typing import Any

from registry.db import utcnow
from tests.retraining.conftest import Retraining, orders
from workers.drift import compute_drift

DEFAULTS = {"prompt_length_psi": 0.2, "unigram_jsd": 0.1, "oov_rate": 0.1}


def _series(r: Retraining, slug: str, adapter: str) -> list[dict[str, Any]]:
    url = f"/v1/tenants/{slug}/adapters/{adapter}/drift-metrics"
    rows: list[dict[str, Any]] = r.ok(r.http.get(url, headers=r.ops))
    return rows


def test_traffic_like_the_training_data_triggers_nothing(retraining: Retraining) -> None:
    """False positives: five adapters, five independent traffic draws from the training
    distribution; every metric stays under its default threshold and no job starts."""
    r = retraining
    train = r.dataset("steady", "orders", orders(300, seed=0))
    seeds = range(1, 6)
    for seed in seeds:
        r.adapter("steady", f"orders{seed}", trained_on=train)
        r.policy("steady", f"orders{seed}", window="1h", min_samples=150)
        r.traffic("steady", f"orders{seed}", orders(200, seed=100 + seed))

    report = {e["adapter"]: e for e in compute_drift(r.ctx, tenant="steady")}

    assert set(report) == {f"orders{s}" for s in seeds}
    for seed in seeds:
        entry = report[f"orders{seed}"]
        assert entry["decision"]["outcome"] == "ok", entry
        [measured] = entry["versions"]
        assert measured["version"] == 1 and measured["samples"] == 200
        for metric, threshold in DEFAULTS.items():
            assert 0 <= measured[metric] < threshold / 2, (seed, metric, measured)
        assert r.jobs("steady", f"orders{seed}") == []
        series = _series(r, "steady", f"orders{seed}")
        assert sorted(m["metric"] for m in series) == sorted(DEFAULTS)
        assert all(m["version"] == 1 and m["sample_size"] == 200 for m in series)
        assert series[0]["details"]["reference_prompts"] == 300
        assert len(series[0]["details"]["length_bin_edges"]) >= 3


def test_shifted_traffic_starts_exactly_one_retrain(retraining: Retraining) -> None:
    r = retraining
    train = r.dataset("shifty", "orders", orders(300, seed=0))
    r.adapter("shifty", "orders", trained_on=train)
    r.policy("shifty", "orders", window="1h", min_samples=100, cooldown="1d")
    r.traffic("shifty", "orders", orders(150, seed=7, shift=True))
    now = utcnow()

    # Two passes at once (two beats, or beat and a hand run): the policy's row lock lets one
    # of them start the job; the other sees it and stands down.
    barrier = threading.Barrier(2)
    reports: list[list[dict[str, Any]]] = []

    def run() -> None:
        barrier.wait()
        reports.append(compute_drift(r.ctx, tenant="shifty", adapter="orders", now=now))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    outcomes = sorted(rep[0]["decision"]["outcome"] for rep in reports)
    assert outcomes == ["cooldown", "triggered"], reports

    [job] = r.jobs("shifty", "orders")
    assert job["trigger"] == "drift" and job["version"] == 2
    reason = job["trigger_ref"]["drift"]
    assert reason["metric"] == "prompt_length_psi" and reason["threshold"] == 0.2
    assert reason["value"] > 1.0 and reason["sample_size"] == 150 and reason["served_version"] == 1
    assert r.train_tasks(job["id"]) == 1

    # The reason is in the new version's lineage and in the audit log.
    lineage = r.ok(
        r.http.get("/v1/tenants/shifty/adapters/orders/versions/2/lineage", headers=r.ops)
    )
    [trigger] = [n for n in lineage["nodes"] if n["type"] == "trigger"]
    assert trigger["attrs"]["kind"] == "drift" and "prompt_length_psi" in trigger["label"]
    assert {"source": f"job:{job['id']}", "target": trigger["id"]} in [
        {"source": e["source"], "target": e["target"]}
        for e in lineage["edges"]
        if e["relation"] == "wasInformedBy"
    ]
    events = r.ok(r.http.get("/v1/audit/events?action=drift_policy.triggered", headers=r.ops))
    assert any(e["details"].get("job_id") == job["id"] for e in events["items"])

    # Within the cooldown: the drift is still there, no second job.
    later = compute_drift(r.ctx, tenant="shifty", adapter="orders")
    assert later[0]["decision"]["outcome"] == "cooldown"
    assert len(r.jobs("shifty", "orders")) == 1
    policy = r.ok(r.http.get("/v1/tenants/shifty/adapters/orders/drift-policy", headers=r.ops))
    assert policy["last_outcome"] == "cooldown" and policy["last_job_id"] == job["id"]


def test_too_few_prompts_start_nothing(retraining: Retraining) -> None:
    r = retraining
    train = r.dataset("sparse", "orders", orders(300, seed=0))
    r.adapter("sparse", "orders", trained_on=train)
    r.policy("sparse", "orders", window="1h", min_samples=100)
    r.traffic("sparse", "orders", orders(60, seed=7, shift=True))

    [entry] = compute_drift(r.ctx, tenant="sparse", adapter="orders")

    assert entry["versions"][0]["prompt_length_psi"] > 1.0  # drifted, but on 60 prompts
    assert entry["decision"]["outcome"] == "insufficient"
    assert "60 prompts; at least 100" in entry["decision"]["message"]
    assert r.jobs("sparse", "orders") == []


def test_each_metric_can_drive_the_policy_and_disabled_policies_are_not_run(
    retraining: Retraining,
) -> None:
    r = retraining
    train = r.dataset("multi", "orders", orders(300, seed=0))
    for metric in DEFAULTS:
        r.adapter("multi", metric.replace("_", "-"), trained_on=train)
        r.policy("multi", metric.replace("_", "-"), metric=metric, window="1h", min_samples=50)
        r.traffic("multi", metric.replace("_", "-"), orders(80, seed=3, shift=True))
    r.adapter("multi", "off", trained_on=train)
    r.policy("multi", "off", window="1h", min_samples=50, enabled=False)
    r.traffic("multi", "off", orders(80, seed=3, shift=True))

    report = {e["adapter"]: e for e in compute_drift(r.ctx, tenant="multi")}

    assert "off" not in report  # the periodic pass skips disabled policies
    for metric in DEFAULTS:
        name = metric.replace("_", "-")
        assert report[name]["decision"]["outcome"] == "triggered", report[name]
        [job] = r.jobs("multi", name)
        assert job["trigger_ref"]["drift"]["metric"] == metric
    # Asked for by name, a disabled policy's adapter is measured but not acted on.
    [entry] = compute_drift(r.ctx, tenant="multi", adapter="off")
    assert entry["decision"] is None and entry["versions"][0]["oov_rate"] > 0.1
    assert r.jobs("multi", "off") == []


def test_an_uploaded_version_has_no_training_prompts_to_compare(retraining: Retraining) -> None:
    r = retraining
    r.adapter("uploads", "orders")  # v1 uploaded: no dataset in its lineage
    r.policy("uploads", "orders", window="1h", min_samples=1)
    r.traffic("uploads", "orders", orders(20, seed=3, shift=True))

    [entry] = compute_drift(r.ctx, tenant="uploads", adapter="orders")

    assert entry["versions"] == [{"version": 1, "skipped": "no training data"}]
    assert entry["decision"]["outcome"] == "no_data"
    assert r.jobs("uploads", "orders") == []
