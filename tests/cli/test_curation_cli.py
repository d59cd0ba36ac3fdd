"""`loraplex datasets from-traffic` against the registry app in-process (its TestClient is the
CLI's HTTP client), on seeded traces and feedback."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from cli.client import Api
from tests.conftest import World
from tests.registry.traffic.test_curation import CORRECTED, ZERO, CurationWorld


@pytest.fixture
def cw(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CurationWorld:
    cw = CurationWorld(world, tmp_path / "tiny-base")
    token = cw.acme.headers["Authorization"].removeprefix("Bearer ")

    def load(cls: type[Api]) -> Api:
        api = Api({"url": "https://testserver", "token": token, "expires_at": 1e12})
        api.profile["tenant"] = "acme"
        api.http = world.http  # type: ignore[assignment]  # an httpx.Client subclass
        return api

    monkeypatch.setattr(Api, "load", classmethod(load))
    return cw


def _invoke(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["datasets", "from-traffic", *args])
    assert result.exit_code == code, result.output
    return result.output


def test_from_traffic(cw: CurationWorld) -> None:
    out = _invoke("fixes", "--adapter", "support", "--rating", "0", "--version", "1")
    assert "fixes v1: 2 rows from 7 traces of support (1 corrected, 1 with redactions)" in out
    assert "skipped: rating 2, rejected 1, unrated 2" in out
    assert "redactions: email 1" in out
    dataset = cw.datasets()[0]
    assert dataset["name"] == "fixes" and dataset["origin"]["filters"]["ratings"] == [0]
    assert cw.content(dataset["id"]) == [ZERO, CORRECTED]

    since = (cw.now - dt.timedelta(days=11)).isoformat()
    until = (cw.now - dt.timedelta(days=9)).isoformat()
    out = _invoke("old", "-a", "support", "--since", since, "--until", until)
    assert "old v1: 1 rows from 1 traces of support (0 corrected, 0 with redactions)" in out

    out = _invoke("recent", "--adapter", "support", "--window", "150m", "--corrected-only", code=1)
    assert "error 422" in out and "0 rows from the traffic of 'support'" in out
    _invoke("recent", "--adapter", "support", "--window", "7d", "--min-count", "99", code=1)
    assert [d["name"] for d in cw.datasets()] == ["old", "fixes"]
