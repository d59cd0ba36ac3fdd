"""GET /v1/tenants pages over what the caller may see, so pages reveal nothing of others."""

from __future__ import annotations

from tests.conftest import World


def _slugs(world: World, headers: dict[str, str], **params: int) -> list[str]:
    resp = world.http.get("/v1/tenants", headers=headers, params=params)
    assert resp.status_code == 200, resp.text
    return [t["slug"] for t in resp.json()["items"]]


def test_a_tenant_pages_over_itself_only(world: World) -> None:
    world.tenant("alpha")
    world.tenant("beta")
    mid = world.tenant("mid")
    world.tenant("zulu")
    # mid sorts third of four: with other tenants in the page, offset 0 would come back empty
    assert _slugs(world, mid.headers, limit=1) == ["mid"]
    assert _slugs(world, mid.headers, limit=1, offset=1) == []
    assert _slugs(world, mid.headers, limit=1, offset=2) == []
    body = world.http.get("/v1/tenants", headers=mid.headers, params={"limit": 1}).json()
    assert body == {"items": body["items"], "limit": 1, "offset": 0}


def test_ops_pages_over_every_tenant(world: World) -> None:
    for slug in ["alpha", "beta", "mid"]:
        world.tenant(slug)
    ops = world.ops.headers
    assert _slugs(world, ops, limit=2) == ["alpha", "beta"]
    assert _slugs(world, ops, limit=2, offset=2) == ["mid"]
