"""The promotion gate's `canary_percent`: a winning candidate gets the `candidate` alias and a
split production/candidate instead of moving production (workers/gate.py, on the database)."""

from __future__ import annotations

import uuid

import pytest

from registry.adapters.promotion import Decision, PromotionPolicy
from registry.auth.principal import Principal
from registry.models import Adapter, Tenant
from tests.registry.splits.conftest import SplitWorld
from workers.gate import move_aliases

WIN = Decision(True, "beat production v1: eval_loss 1.2 vs 1.5", [])
LOSS = Decision(False, "lost to production v1 on eval_loss", [])


def _move(sw: SplitWorld, decision: Decision, canary: int, number: int = 3) -> str:
    assert sw.acme.tenant_id is not None
    with sw.world.stack.session() as s:
        tenant = s.get(Tenant, uuid.UUID(sw.acme.tenant_id))
        adapter = s.query(Adapter).filter_by(name="support").one()
        assert tenant is not None
        kind = move_aliases(
            s,
            actor=Principal.local_operator("worker:test"),
            tenant=tenant,
            adapter=adapter,
            number=number,
            decision=decision,
            canary=canary,
            job_id="job-1",
        )
        s.commit()
    return kind


def _aliases(sw: SplitWorld) -> dict[str, int]:
    resp = sw.http.get("/v1/tenants/acme/adapters/support/aliases", headers=sw.acme.headers)
    return {a["alias"]: a["version"] for a in resp.json()}


def test_a_win_under_a_canary_policy_starts_a_split(sw: SplitWorld) -> None:
    assert _move(sw, WIN, canary=10) == "canary_started"
    assert _aliases(sw) == {"production": 1, "candidate": 3}
    split = sw.get()
    assert [(a["key"], a["version"], a["weight"]) for a in split["arms"]] == [
        ("production", 1, 90),
        ("candidate", 3, 10),
    ]
    assert split["reason"] == f"job job-1: canary at 10%: {WIN.reason}"
    assert split["set_by"] == "worker:test" and split["rollback"]["min_requests"] == 50


def test_without_a_canary_a_win_moves_production_and_a_loss_starts_nothing(
    sw: SplitWorld,
) -> None:
    assert _move(sw, LOSS, canary=0) == "not_promoted"
    assert _aliases(sw) == {"production": 1, "candidate": 3} and sw.get()["active"] is False
    assert _move(sw, WIN, canary=0) == "promoted"
    assert _aliases(sw)["production"] == 3 and sw.get("/history") == []


@pytest.mark.parametrize("percent", [-1, 100])
def test_canary_percent_is_0_to_99(sw: SplitWorld, percent: int) -> None:
    with pytest.raises(ValueError, match="canary_percent"):
        PromotionPolicy(mode="auto", canary_percent=percent)
    resp = sw.http.put(
        "/v1/tenants/acme/adapters/support/promotion-policy",
        json={"mode": "auto", "canary_percent": percent},
        headers=sw.acme.headers,
    )
    assert resp.status_code == 422 and "canary_percent" in resp.json()["detail"]
    ok = sw.http.put(
        "/v1/tenants/acme/adapters/support/promotion-policy",
        json={"mode": "auto", "canary_percent": 10},
        headers=sw.acme.headers,
    )
    assert ok.status_code == 200 and ok.json()["promotion_policy"]["canary_percent"] == 10
