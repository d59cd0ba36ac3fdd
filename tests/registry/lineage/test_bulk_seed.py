"""The benchmark's bulk data (tests/registry/lineage/bulk.py) is valid lineage, and a tenant
with many adapters and versions still costs the same ten statements per lineage request."""

from __future__ import annotations

import random

from tests.conftest import World
from tests.registry.lineage.bulk import bulk_seed
from tests.registry.lineage.conftest import statements, url


def test_bulk_seeded_chains_have_complete_lineage(w: World) -> None:
    with w.stack.session() as s:
        data = bulk_seed(s.connection(), 2, 400, random.Random(1))
        s.commit()
    assert data["rows"]["adapter_versions"] == 400 and data["rows"]["tenants"] == 2
    slug, name, depth = max(data["tips"], key=lambda t: t[2])
    with statements(w) as seen:
        resp = w.http.get(url(slug, name, f"v{depth}"), headers=w.auditor.headers)
    assert resp.status_code == 200, resp.text
    kinds: dict[str, int] = {}
    for node in resp.json()["nodes"]:
        kinds[node["type"]] = kinds.get(node["type"], 0) + 1
    assert kinds["adapter_version"] == depth and kinds["eval"] == depth
    assert kinds["dataset"] == depth + 1 and kinds["base_model"] == 1 and kinds["job"] == depth
    assert kinds["alias_event"] >= depth  # a candidate move per version, some production ones
    queries = [q for q in seen if q.lstrip().upper().startswith(("SELECT", "WITH"))]
    assert len(queries) == 10, queries
    mid = w.http.get(url(slug, name, "v2"), headers=w.auditor.headers).json()
    assert sum(n["type"] == "adapter_version" for n in mid["nodes"]) == 2
