"""Which version served whom, when: the gateway's usage records in a version's lineage."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from registry.models import UsageRecord
from tests.conftest import World
from tests.registry.lineage.conftest import url
from tests.registry.lineage.seed import T0, seed_chain


def _usage(  # type: ignore[no-untyped-def]
    c, number: int, client: str, at: dt.datetime, status: int = 200, calls: int = 0
) -> UsageRecord:
    return UsageRecord(
        tool_calls=calls,
        tenant_id=c.tenant_id,
        adapter_id=c.adapter_id,
        version_id=c.versions[number],
        request_id=uuid.uuid4().hex,
        client_id=client,
        model="support",
        endpoint="completions",
        stream=False,
        status_code=status,
        prompt_tokens=10,
        completion_tokens=5,
        latency_ms=12.0,
        started_at=at,
    )


@pytest.mark.smoke
def test_served_periods_per_version_in_graph_and_prov(w: World) -> None:
    acme = w.tenant("acme")
    c = seed_chain(w.stack, uuid.UUID(acme.tenant_id), creator=acme.client_id, depth=2)
    with w.stack.session() as s:
        s.add_all(
            [
                _usage(c, 1, "app-a", T0 + dt.timedelta(hours=1)),
                _usage(c, 1, "app-b", T0 + dt.timedelta(hours=5), calls=2),
                _usage(c, 1, "app-b", T0 + dt.timedelta(hours=6), status=503),  # not served
                _usage(c, 2, "app-a", T0 + dt.timedelta(days=2)),
            ]
        )
        s.commit()
    g = w.http.get(url("acme", "support", "v2"), headers=acme.headers).json()
    served = {n["id"]: n for n in g["nodes"] if n["type"] == "serving"}
    one = served[f"serving:{c.versions[1]}"]
    assert one["attrs"]["requests"] == 2 and one["attrs"]["clients"] == 2
    assert one["attrs"]["tokens"] == 30 and one["attrs"]["tool_calls"] == 2
    assert dt.datetime.fromisoformat(one["attrs"]["first_request_at"]) == T0 + dt.timedelta(hours=1)
    assert dt.datetime.fromisoformat(one["attrs"]["last_request_at"]) == T0 + dt.timedelta(hours=5)
    assert served[f"serving:{c.versions[2]}"]["attrs"]["requests"] == 1
    edges = {(e["source"], e["target"], e["relation"]) for e in g["edges"]}
    assert (f"serving:{c.versions[1]}", f"version:{c.versions[1]}", "used") in edges

    doc = w.http.get(url("acme", "support", "v2", format="prov"), headers=acme.headers).json()
    activity = doc["activity"][f"loraplex:serving/{c.versions[1]}"]
    assert activity["prov:type"]["$"] == "loraplex:Serving"
    assert activity["prov:startTime"] == (T0 + dt.timedelta(hours=1)).isoformat()
    used = {(r["prov:activity"], r["prov:entity"], r["prov:role"]) for r in doc["used"].values()}
    assert (
        f"loraplex:serving/{c.versions[1]}",
        f"loraplex:version/{c.versions[1]}",
        "served_adapter",
    ) in used


def test_another_tenants_usage_never_shows(w: World) -> None:
    acme, globex = w.tenant("acme"), w.tenant("globex")
    c = seed_chain(w.stack, uuid.UUID(acme.tenant_id), creator=acme.client_id, depth=1)
    g = seed_chain(w.stack, uuid.UUID(globex.tenant_id), creator=globex.client_id, depth=1)
    with w.stack.session() as s:
        s.add(_usage(g, 1, "globex-app", T0))
        s.commit()
    nodes = w.http.get(url("acme", "support", "v1"), headers=acme.headers).json()["nodes"]
    assert not [n for n in nodes if n["type"] == "serving"]
    assert c.versions[1] != g.versions[1]
