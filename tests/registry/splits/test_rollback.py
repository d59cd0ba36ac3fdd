"""The automatic rollback check on seeded usage records: a candidate worse than production by
the policy's margin is rolled back with the figures recorded; under `min_requests` nothing is
decided; a split whose production moved is cleared; the periodic task runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.auth.principal import Principal
from registry.settings import Settings
from registry.splits.repository import VersionFigures
from registry.splits.rollback import check_splits, judge
from registry.splits.schemas import RollbackPolicy
from registry.tasks import SPLIT_CHECK, periodic_tasks
from tests.registry.splits.conftest import SPLIT, SplitWorld
from workers.context import WorkerContext
from workers.task_table import run_task

TENTH = {"production": 90, "candidate": 10}
POLICY = {"min_requests": 20, "max_error_rate_increase": 0.05, "max_latency_ratio": 2.0}
ROBOT = Principal.local_operator("worker:test")


@pytest.mark.smoke
def test_a_candidate_with_more_errors_is_rolled_back_with_the_figures(sw: SplitWorld) -> None:
    assert sw.put(TENTH, rollback=POLICY).status_code == 200
    sw.usage(1, ok=198, failed=2)  # 1 %
    sw.usage(2, ok=15, failed=10)  # 40 %
    result = check_splits(sw.opener(), actor=ROBOT)
    assert (result.checked, result.rolled_back) == (1, 1)
    assert sw.get()["active"] is False
    last = sw.get("/history")[-1]
    assert last["automatic"] is True and last["arms"] == [] and last["actor"] == "worker:test"
    assert "v2 error rate 40.0% (10/25) vs production v1 1.0% (2/200)" in last["reason"]
    assert "+39.0 points, more than the 5.0 allowed" in last["reason"]
    assert last["details"]["figures"]["v2"] == {
        "requests": 25,
        "errors": 10,
        "error_rate": 0.4,
        "p95_ms": 100.0,
    }
    events = sw.http.get(
        "/v1/audit/events", params={"action": "split.rollback"}, headers=sw.world.auditor.headers
    ).json()["items"]
    assert len(events) == 1 and events[0]["details"]["automatic"] is True
    assert events[0]["details"]["reason"] == last["reason"]


def test_a_slower_candidate_is_rolled_back(sw: SplitWorld) -> None:
    assert sw.put(TENTH, rollback=POLICY).status_code == 200
    sw.usage(1, ok=100, failed=0, ms=200.0)
    sw.usage(2, ok=30, failed=0, ms=900.0)
    assert check_splits(sw.opener(), actor=ROBOT).rolled_back == 1
    reason = sw.get("/history")[-1]["reason"]
    assert "v2 p95 latency 900 ms vs production v1 200 ms: 4.50x, more than the 2x allowed" in (
        reason
    )


def test_under_min_requests_nothing_is_decided(sw: SplitWorld) -> None:
    assert sw.put(TENTH, rollback=POLICY).status_code == 200
    sw.usage(1, ok=300, failed=0)
    sw.usage(2, ok=0, failed=19)  # every answer failed, but 19 < 20
    result = check_splits(sw.opener(), actor=ROBOT)
    assert (result.checked, result.rolled_back) == (1, 0)
    split = sw.get()
    assert split["active"] is True
    assert split["last_check"]["decision"] == "insufficient"
    assert (
        "v2 19 and production v1 300 requests (at least 20 each needed)"
        in (split["last_check"]["reason"])
    )
    sw.usage(2, ok=0, failed=1)  # the 20th
    assert check_splits(sw.opener(), actor=ROBOT).rolled_back == 1


def test_a_healthy_candidate_stays_and_no_policy_means_no_check(sw: SplitWorld) -> None:
    assert sw.put(TENTH, rollback=POLICY).status_code == 200
    sw.usage(1, ok=200, failed=4)
    sw.usage(2, ok=40, failed=1)
    assert check_splits(sw.opener(), actor=ROBOT).rolled_back == 0
    assert sw.get()["last_check"]["decision"] == "ok"
    assert sw.put(TENTH, rollback=None).status_code == 200
    sw.usage(2, ok=0, failed=100)
    assert check_splits(sw.opener(), actor=ROBOT).rolled_back == 0
    assert sw.get()["active"] is True


def test_moving_production_ends_the_split(sw: SplitWorld) -> None:
    assert sw.put(TENTH, rollback=POLICY).status_code == 200
    assert sw.set_alias("production", 3, "hotfix").status_code == 200
    stale = sw.get()
    assert stale["active"] is False and stale["stale"] is True
    result = check_splits(sw.opener(), actor=ROBOT)
    assert result.cleared_stale == 1
    last = sw.get("/history")[-1]
    assert last["automatic"] is True
    assert last["reason"].startswith("production moved from v1 to v3")
    assert sw.get()["arms"] == [{"key": "production", "version": 3, "weight": 100}]


def test_the_periodic_task_runs_it(sw: SplitWorld, tmp_path: Path) -> None:
    every = {name: s for _, name, s in periodic_tasks(Settings(home=tmp_path))}
    assert every[SPLIT_CHECK] == 30.0
    off = Settings(home=tmp_path, split_check_seconds=0)
    assert SPLIT_CHECK not in {name for _, name, _ in periodic_tasks(off)}
    assert sw.put(TENTH, rollback=POLICY).status_code == 200
    sw.usage(1, ok=100, failed=0)
    sw.usage(2, ok=0, failed=30)
    app = sw.world.stack.app
    ctx = WorkerContext(
        settings=app.state.settings,
        engine=sw.world.stack.engine,
        sessions=app.state.sessionmaker,
        store=sw.world.stack.store,
        queue=sw.world.stack.tasks,
    )
    assert run_task(ctx, SPLIT_CHECK, host="test") == {
        "checked": 1,
        "rolled_back": 1,
        "cleared_stale": 0,
    }
    assert sw.http.get(SPLIT, headers=sw.acme.headers).json()["active"] is False


def test_judge_needs_both_sides_and_skips_unset_criteria() -> None:
    base = VersionFigures(100, 0, [100.0] * 100)
    bad = VersionFigures(100, 50, [1000.0] * 50)
    only_latency = RollbackPolicy(min_requests=10, max_error_rate_increase=None)
    verdict = judge(only_latency, (1, base), [(2, bad)])
    assert verdict.roll_back and "error rate" not in verdict.reason and "p95" in verdict.reason
    neither = RollbackPolicy(max_error_rate_increase=None, max_latency_ratio=None)
    assert judge(neither, (1, base), [(2, bad)]).decision == "ok"
    few = judge(RollbackPolicy(min_requests=101), (1, base), [(2, bad)])
    assert few.decision == "insufficient"
