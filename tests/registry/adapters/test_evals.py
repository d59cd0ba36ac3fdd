from __future__ import annotations

import pytest

from tests.registry.adapters.conftest import AdapterWorld

V = "/v1/tenants/acme/adapters/support/versions"


def post_eval(aw: AdapterWorld, version: int, metrics: dict, subject: str = "version",
              suite: str = "heldout"):  # type: ignore[no-untyped-def]
    return aw.http.post(f"{V}/{version}/evals", headers=aw.acme.headers,
                        json={"suite": suite, "metrics": metrics, "subject": subject})


@pytest.mark.smoke
def test_evals_are_stored_and_compared_metric_by_metric(aw: AdapterWorld) -> None:
    aw.upload()
    aw.upload()
    assert post_eval(aw, 1, {"loss": 1.5, "exact_match": 0.2}).status_code == 201
    post_eval(aw, 1, {"loss": 2.5, "exact_match": 0.0}, subject="base_model")
    post_eval(aw, 2, {"loss": 1.0, "exact_match": 0.5, "json_valid": 1.0})
    listed = aw.http.get(f"{V}/1/evals", headers=aw.acme.headers).json()
    assert [(e["subject"], e["metrics"]["loss"]) for e in listed] == [("version", 1.5),
                                                                      ("base_model", 2.5)]
    cmp = aw.http.get(f"{V}/1/compare?with=v2", headers=aw.acme.headers).json()
    assert cmp["a"] == "v1" and cmp["b"] == "v2"
    by_metric = {m["metric"]: m for m in cmp["metrics"]}
    assert by_metric["loss"]["delta"] == pytest.approx(-0.5)
    assert by_metric["json_valid"] == {"suite": "heldout", "metric": "json_valid", "a": None,
                                       "b": 1.0, "delta": None}
    base = aw.http.get(f"{V}/1/compare?with=base", headers=aw.acme.headers).json()
    assert base["b"] == "base_model"
    assert {m["metric"]: m["delta"] for m in base["metrics"]} == {"loss": 1.0,
                                                                 "exact_match": -0.2}


@pytest.mark.parametrize(
    "body",
    [
        {"suite": "s", "metrics": {}},
        {"suite": "s", "metrics": {"loss": "high"}},
        {"suite": "", "metrics": {"loss": 1}},
        {"suite": "s", "metrics": {"loss": 1}, "subject": "production"},
    ],
)
def test_bad_evals_are_422(aw: AdapterWorld, body: dict) -> None:
    aw.upload()
    resp = aw.http.post(f"{V}/1/evals", json=body, headers=aw.acme.headers)
    assert resp.status_code == 422, resp.text


def test_nan_metric_is_refused(aw: AdapterWorld) -> None:
    aw.upload()
    resp = aw.http.post(f"{V}/1/evals", content=b'{"suite": "s", "metrics": {"loss": NaN}}',
                        headers={**aw.acme.headers, "content-type": "application/json"})
    assert resp.status_code == 422
