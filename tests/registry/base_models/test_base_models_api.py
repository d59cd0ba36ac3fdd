"""GET /v1/base-models: the uri (server paths, buckets) is for ops and auditors only."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import World
from tests.lora_files import make_base_model


def test_uri_is_hidden_from_tenants(world: World, tmp_path: Path) -> None:
    folder = make_base_model(tmp_path / "secret-path" / "tiny")
    resp = world.http.post(
        "/v1/base-models", json={"name": "tiny", "uri": str(folder)}, headers=world.ops.headers
    )
    assert resp.status_code == 201 and resp.json()["uri"] == str(folder)
    acme = world.tenant("acme")
    for caller, uri in ((world.ops, str(folder)), (world.auditor, str(folder)), (acme, None)):
        listed = world.http.get("/v1/base-models", headers=caller.headers)
        one = world.http.get("/v1/base-models/tiny", headers=caller.headers)
        assert listed.status_code == one.status_code == 200
        assert [m["uri"] for m in listed.json()] == [uri] and one.json()["uri"] == uri
        assert one.json()["digest"] == resp.json()["digest"]
    assert "secret-path" not in world.http.get("/v1/base-models", headers=acme.headers).text
