from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from registry.models import AdapterVersion, AliasEvent
from tests.registry.adapters.conftest import AdapterWorld

PATH = "/v1/tenants/acme/adapters/support/aliases"


@pytest.mark.smoke
def test_alias_moves_are_recorded_and_audited(aw: AdapterWorld) -> None:
    for _ in range(3):
        assert aw.upload().status_code == 201
    assert aw.set_alias("production", 1, "first").status_code == 200
    assert aw.set_alias("production", 2, "evals won").json()["version"] == 2
    assert aw.set_alias("production", 2, "no-op").status_code == 200  # same target: no event
    assert aw.set_alias("candidate", 3).status_code == 200
    listed = aw.http.get(PATH, headers=aw.acme.headers).json()
    assert [(a["alias"], a["version"]) for a in listed] == [("candidate", 3), ("production", 2)]
    history = aw.http.get(f"{PATH}/production/history", headers=aw.acme.headers).json()
    assert [(h["from_version"], h["to_version"], h["reason"]) for h in history] == [
        (None, 1, "first"), (1, 2, "evals won")]
    assert all(h["actor"] == aw.acme.client_id for h in history)
    resp = aw.http.delete(f"{PATH}/candidate?reason=retired", headers=aw.acme.headers)
    assert resp.status_code == 204
    history = aw.http.get(f"{PATH}/candidate/history", headers=aw.acme.headers).json()
    assert [(h["from_version"], h["to_version"]) for h in history] == [(None, 3), (3, None)]
    events = aw.http.get("/v1/audit/events?action=alias.set",
                         headers=aw.world.auditor.headers).json()["items"]
    assert [e["details"]["to_version"] for e in events] == [1, 2, 3]


def test_at_time_before_at_and_after_each_move(aw: AdapterWorld) -> None:
    for _ in range(2):
        aw.upload()
    aw.set_alias("production", 1)
    aw.set_alias("production", 2)
    t0 = dt.datetime(2026, 3, 3, 14, 0, tzinfo=dt.UTC)
    moves = [t0, t0 + dt.timedelta(hours=2)]
    with aw.world.stack.session() as session:  # place the two moves at known times
        rows = session.query(AliasEvent).order_by(AliasEvent.id).all()
        for row, when in zip(rows, moves, strict=True):
            session.execute(update(AliasEvent).where(AliasEvent.id == row.id)
                            .values(occurred_at=when))
        session.commit()

    def at(when: dt.datetime):  # type: ignore[no-untyped-def]
        return aw.http.get(f"{PATH}/production/at", params={"time": when.isoformat()},
                           headers=aw.acme.headers)

    second = dt.timedelta(seconds=1)
    assert at(moves[0] - second).status_code == 404
    assert at(moves[0]).json()["version"] == 1
    assert at(moves[0] + second).json()["version"] == 1
    assert at(moves[1] - second).json()["version"] == 1
    assert at(moves[1]).json()["version"] == 2
    assert at(moves[1] + dt.timedelta(days=400)).json()["version"] == 2
    assert at(moves[1]).json()["since"].startswith("2026-03-03T16:00:00")
    # naive times are UTC; other offsets are converted
    naive = aw.http.get(f"{PATH}/production/at?time=2026-03-03T15:00:00",
                        headers=aw.acme.headers)
    assert naive.json()["version"] == 1
    offset = aw.http.get(f"{PATH}/production/at", params={"time": "2026-03-03T17:30:00+01:00"},
                         headers=aw.acme.headers)
    assert offset.json()["version"] == 2


def test_only_ready_versions_hold_aliases(aw: AdapterWorld) -> None:
    aw.upload()
    with aw.world.stack.session() as session:
        session.execute(update(AdapterVersion).values(status="training"))
        session.commit()
    resp = aw.set_alias("production", 1)
    assert resp.status_code == 409 and "ready" in resp.json()["detail"]
    assert aw.set_alias("production", 7).status_code == 404


@pytest.mark.parametrize("alias", ["Prod", "has space", "x" * 41, "-lead"])
def test_invalid_alias_names(aw: AdapterWorld, alias: str) -> None:
    aw.upload()
    resp = aw.http.put(f"{PATH}/{alias}", json={"version": 1}, headers=aw.acme.headers)
    assert resp.status_code in (404, 422), resp.text  # 404 only where the path cannot route


def test_another_tenants_alias_is_404(aw: AdapterWorld) -> None:
    aw.upload()
    aw.set_alias("production", 1)
    globex = aw.world.tenant("globex")
    assert aw.http.get(f"{PATH}/production/history", headers=globex.headers).status_code == 404
    resp = aw.http.put(f"{PATH}/production", json={"version": 1}, headers=globex.headers)
    assert resp.status_code == 404
