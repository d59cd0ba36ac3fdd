"""Drift metrics posted by a tenant's monitoring (POST/GET .../adapters/{name}/drift-metrics)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import World
from tests.registry.adapters.conftest import AdapterWorld

D = "/v1/tenants/acme/adapters/support/drift-metrics"


@pytest.fixture
def aw(world: World, tmp_path: Path) -> AdapterWorld:
    return AdapterWorld(world, tmp_path / "tiny-base")


def test_drift_series_with_range_filters(aw: AdapterWorld) -> None:
    aw.upload()
    for day, value in ((1, 0.05), (2, 0.12), (3, 0.31)):
        resp = aw.http.post(
            D,
            headers=aw.acme.headers,
            json={
                "metric": "psi_prompt_length",
                "value": value,
                "sample_size": 500,
                "version": 1,
                "window_start": f"2026-11-0{day}T00:00:00Z",
                "window_end": f"2026-11-0{day}T23:00:00Z",
            },
        )
        assert resp.status_code == 201, resp.text
    aw.http.post(
        D,
        headers=aw.acme.headers,
        json={
            "metric": "js_unigram",
            "value": 0.01,
            "sample_size": 500,
            "window_start": "2026-11-01T00:00:00Z",
            "window_end": "2026-11-01T23:00:00Z",
        },
    )
    series = aw.http.get(D, params={"metric": "psi_prompt_length"}, headers=aw.acme.headers)
    assert [p["value"] for p in series.json()] == [0.05, 0.12, 0.31]
    assert series.json()[0]["version"] == 1
    ranged = aw.http.get(
        D,
        params={
            "metric": "psi_prompt_length",
            "since": "2026-11-02T00:00:00Z",
            "until": "2026-11-02T23:59:00Z",
        },
        headers=aw.acme.headers,
    )
    assert [p["value"] for p in ranged.json()] == [0.12]
    assert len(aw.http.get(D, headers=aw.acme.headers).json()) == 4


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"window_end": "2026-10-01T00:00:00Z"}, "after"),
        ({"window_start": "2026-11-01T00:00:00"}, "timezone"),
        ({"sample_size": -1}, "sample_size"),
        ({"version": 9}, "not found"),
        ({"version": 10**30}, "version"),  # beyond the INTEGER column: 422, not a 500
    ],
)
def test_bad_drift_metrics(aw: AdapterWorld, patch: dict, needle: str) -> None:
    aw.upload()
    body = {
        "metric": "psi",
        "value": 0.1,
        "sample_size": 5,
        "window_start": "2026-11-01T00:00:00Z",
        "window_end": "2026-11-02T00:00:00Z",
        **patch,
    }
    resp = aw.http.post(D, json=body, headers=aw.acme.headers)
    assert resp.status_code in (404, 422) and needle in resp.json()["detail"], resp.text
