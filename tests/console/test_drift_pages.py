"""GET /console/t/{t}/adapters/{n}/drift: each metric over time against the policy's threshold,
the retrains the drift started marked, and the recent checks."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

from registry.adapters.service import adapters
from registry.db import run_unit_of_work, utcnow
from registry.drift.service import drift_policies
from registry.tenants.repository import TenantRepository
from tests.conftest import World
from tests.console.conftest import ConsoleClient
from tests.console.eval_seed import by_id, find, rows
from tests.registry.adapters.conftest import AdapterWorld
from tests.registry.datasets.test_datasets_api import chat

pytestmark = pytest.mark.smoke

PAGE = "/console/t/acme/adapters/support/drift"
METRICS = "/v1/tenants/acme/adapters/support/drift-metrics"


def post_metric(aw: AdapterWorld, metric: str, value: float, hours_ago: float) -> None:
    end = utcnow() - dt.timedelta(hours=hours_ago)
    body = {
        "metric": metric,
        "value": value,
        "window_start": (end - dt.timedelta(hours=1)).isoformat(),
        "window_end": end.isoformat(),
        "sample_size": 50,
        "version": 1,
    }
    resp = aw.http.post(METRICS, json=body, headers=aw.acme.headers)
    assert resp.status_code == 201, resp.text


def check(aw: AdapterWorld) -> Any:
    app = aw.world.stack.app
    for session in run_unit_of_work(app.state.sessionmaker):
        tenant = TenantRepository(session).get_by_slug("acme")
        assert tenant is not None
        adapter = adapters.get(session, tenant=tenant, name="support")
        decision = drift_policies.check(
            session,
            tenant=tenant,
            adapter=adapter,
            now=utcnow(),
            settings=app.state.settings,
            queue=aw.world.stack.tasks,
        )
    return decision


@pytest.fixture
def aw(world: World, tmp_path: Path) -> AdapterWorld:
    """v1 in production with a drift policy on prompt_length_psi (threshold 0.3); four windows
    of it, the last one crossing, which the check turns into a drift retrain (v2)."""
    aw = AdapterWorld(world, tmp_path / "tiny-base")
    assert aw.upload().status_code == 201
    assert aw.set_alias("production", 1, "first").status_code == 200
    resp = aw.http.post(
        "/v1/tenants/acme/datasets",
        headers=aw.acme.headers,
        data={"name": "support-data"},
        files={"file": ("d.jsonl", b"".join(chat(i) for i in range(5)))},
    )
    assert resp.status_code == 201, resp.text
    resp = aw.http.put(
        "/v1/tenants/acme/adapters/support/drift-policy",
        json={
            "metric": "prompt_length_psi",
            "threshold": 0.3,
            "window": "2h",
            "min_samples": 10,
            "cooldown": "1d",
        },
        headers=world.ops.headers,
    )
    assert resp.status_code == 200, resp.text
    for hours, value in ((30, 0.05), (20, 0.1), (10, 0.2)):
        post_metric(aw, "prompt_length_psi", value, hours)
    post_metric(aw, "oov_rate", 0.02, 10)
    assert check(aw).outcome == "no_data"  # nothing fresh within the window yet
    post_metric(aw, "prompt_length_psi", 0.9, 0.1)
    assert check(aw).outcome == "triggered"
    return aw


def job_id(aw: AdapterWorld) -> str:
    resp = aw.http.get("/v1/tenants/acme/training-jobs?adapter=support", headers=aw.acme.headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    items = body["items"] if isinstance(body, dict) else body
    [job] = [j for j in items if j["trigger"] == "drift"]
    return str(job["id"])


def test_chart_draws_the_metric_threshold_and_the_retrain(aw: AdapterWorld) -> None:
    resp = ConsoleClient(aw.world, aw.acme).get(PAGE)
    assert resp.status_code == 200, resp.text
    attrs, _, psi = by_id(resp.text, "drift-prompt_length_psi")
    assert attrs["data-points"] == "4"
    [(line, _, _)] = find(psi, lambda t, a: t == "polyline")
    assert line["data-series"] == "prompt_length_psi" and line["data-points"] == "4"
    assert len(find(psi, lambda t, a: t == "line" and a.get("class") == "threshold")) == 1
    assert "threshold 0.3" in psi
    markers = find(psi, lambda t, a: t == "a")
    assert [a["href"] for a, _, _ in markers] == [f"/console/t/acme/jobs/{job_id(aw)}"]
    assert "retrain v2" in markers[0][1]
    attrs, _, oov = by_id(resp.text, "drift-oov_rate")
    assert attrs["data-points"] == "1" and 'class="threshold"' not in oov
    assert 'class="marker"' not in oov  # the retrain was started by the other metric


def test_checks_table_shows_outcomes_and_the_retrain(aw: AdapterWorld) -> None:
    resp = ConsoleClient(aw.world, aw.acme).get(PAGE)
    _, _, table = by_id(resp.text, "drift-checks")
    [(policy, text, _)] = find(table, lambda t, a: t == "tr" and "data-outcome" in a)
    assert policy["data-outcome"] == "triggered" and "crossed" in text
    windows = list(rows(table, "data-metric-id").values())
    assert len(windows) == 5
    assert "0.9" in windows[0] and "triggered" in windows[0] and "v2" in windows[0]
    assert sum("above" in w for w in windows) == 0 and sum("below" in w for w in windows) == 3
    assert "not watched" in windows[1] or "not watched" in " ".join(windows)
    assert re.search(rf"/console/t/acme/jobs/{job_id(aw)}", table)


def test_who_may_look(aw: AdapterWorld) -> None:
    assert ConsoleClient(aw.world, aw.world.auditor).get(PAGE).status_code == 200
    globex = aw.world.tenant("globex")
    assert ConsoleClient(aw.world, globex).get(PAGE).status_code == 404
    assert (
        ConsoleClient(aw.world, globex).get("/console/t/globex/adapters/support/drift").status_code
        == 404
    )


def test_no_policy_no_metrics(world: World, tmp_path: Path) -> None:
    aw = AdapterWorld(world, tmp_path / "base")
    resp = ConsoleClient(world, aw.acme).get(PAGE)
    assert resp.status_code == 200
    assert by_id(resp.text, "drift-empty") and "No drift policy" in resp.text
    by_id(resp.text, "drift-checks")
