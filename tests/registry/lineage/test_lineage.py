"""Lineage of an adapter version: the full graph of a three-generation chain, its PROV-JSON
form, who may read it, and a statement count that does not grow with the chain."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from registry.models import AliasEvent
from tests.conftest import Caller, World
from tests.registry.lineage.conftest import statements, url
from tests.registry.lineage.seed import T0, Chain, seed_chain


def three_generations(w: World, acme: Caller) -> Chain:
    """v1 uploaded; v2 trained on support@1 + heldout@1; v3 (drift) on support@2 + heldout@1;
    v4 is v3's child (not in v3's lineage). Alias moves touch every one of them."""
    c = seed_chain(w.stack, uuid.UUID(acme.tenant_id), creator=acme.client_id, depth=4)
    with w.stack.session() as s:  # touches v4 only: not in v3's lineage
        s.add(
            AliasEvent(
                tenant_id=c.tenant_id,
                adapter_id=c.adapter_id,
                alias="canary",
                from_version=None,
                to_version=4,
                actor="ops",
                occurred_at=T0,
            )
        )
        s.commit()
    return c


@pytest.mark.smoke
def test_three_generation_lineage_is_complete(w: World) -> None:
    acme = w.tenant("acme")
    c = three_generations(w, acme)
    resp = w.http.get(url("acme", "support", "v3"), headers=acme.headers)
    assert resp.status_code == 200, resp.text
    g = resp.json()
    v1, v2, v3 = (f"version:{c.versions[n]}" for n in (1, 2, 3))
    assert g["root"] == v3
    nodes = {n["id"]: n for n in g["nodes"]}
    assert len(nodes) == len(g["nodes"])
    ds = {key: f"dataset:{c.datasets[key]}" for key in ("support@1", "support@2", "heldout@1")}
    evals = {key: f"eval:{c.evals[key]}" for key in ("v2/version", "v3/version", "v3/base_model")}
    moves = {key: f"alias_event:{i}" for key, i in c.alias_events.items()}
    base = f"base_model:{c.base_digest}"
    agents = {f"agent:{acme.client_id}", "agent:ops-scheduler"}
    assert set(nodes) == {
        v1,
        v2,
        v3,
        base,
        "job:job-2",
        "job:job-3",
        *ds.values(),
        *evals.values(),
        *moves.values(),
        *agents,
    }
    assert f"version:{c.versions[4]}" not in nodes  # a descendant is not lineage

    assert nodes[v3]["type"] == "adapter_version" and nodes[v3]["label"] == "support@v3"
    a3 = nodes[v3]["attrs"]
    assert a3["version"] == 3 and a3["status"] == "ready" and a3["trigger"] == "drift"
    assert a3["trigger_ref"] == {"policy": "psi>0.2", "metric": 0.31}
    assert a3["manifest_digest"] == "m" * 63 + "3" and a3["config_hash"] == "c" * 64
    assert a3["created_by"] == "ops-scheduler" and a3["ready_at"] is not None
    assert dt.datetime.fromisoformat(a3["created_at"]) == T0 + dt.timedelta(days=3)
    assert nodes[v1]["attrs"]["trigger"] == "upload" and nodes[v1]["attrs"]["job_id"] is None
    assert nodes[base]["attrs"] == {
        "name": c.base_name,
        "digest": c.base_digest,
        "uri": "s3://models/tiny",
    }
    assert nodes["job:job-2"] == {
        "id": "job:job-2",
        "type": "job",
        "label": "job job-2",
        "attrs": {"job_id": "job-2"},
    }
    held = nodes[ds["heldout@1"]]["attrs"]
    assert held == {
        "name": "heldout",
        "version": 1,
        "sha256": "d" * 63 + "h",
        "rows": 100,
        "role": "validation",
    }
    assert nodes[ds["support@2"]]["attrs"]["role"] == "train"
    baseline = nodes[evals["v3/base_model"]]["attrs"]
    assert baseline["suite"] == "heldout" and baseline["subject"] == "base_model"
    assert baseline["metrics"] == {"eval_loss": 1.9}
    move = nodes[moves["production 2->3"]]
    assert move["type"] == "alias_event" and move["label"] == "production: v2 -> v3"
    assert {k: move["attrs"][k] for k in ("alias", "from", "to", "actor", "reason")} == {
        "alias": "production",
        "from": 2,
        "to": 3,
        "actor": "ops",
        "reason": "drift retrain won",
    }
    assert nodes["agent:ops-scheduler"]["type"] == "agent"

    edges = {(e["source"], e["target"], e["relation"], e["attrs"].get("role")) for e in g["edges"]}
    assert len(edges) == len(g["edges"])
    assert edges == {
        (v3, v2, "wasDerivedFrom", None),
        (v2, v1, "wasDerivedFrom", None),
        (v1, base, "used", None),
        (v2, base, "used", None),
        (v3, base, "used", None),
        (v2, ds["support@1"], "used", "train"),
        (v2, ds["heldout@1"], "used", "validation"),
        (v3, ds["support@2"], "used", "train"),
        (v3, ds["heldout@1"], "used", "validation"),
        (v2, "job:job-2", "wasGeneratedBy", None),
        (v3, "job:job-3", "wasGeneratedBy", None),
        (v1, f"agent:{acme.client_id}", "wasAttributedTo", None),
        (v2, f"agent:{acme.client_id}", "wasAttributedTo", None),
        (v3, "agent:ops-scheduler", "wasAttributedTo", None),
        (evals["v2/version"], v2, "wasDerivedFrom", None),
        (evals["v3/version"], v3, "wasDerivedFrom", None),
        (evals["v3/base_model"], v3, "wasDerivedFrom", None),
        (evals["v3/base_model"], base, "wasDerivedFrom", None),
        (moves["production -->1"], v1, "used", "to"),
        (moves["production 1->2"], v1, "used", "from"),
        (moves["production 1->2"], v2, "used", "to"),
        (moves["production 2->3"], v2, "used", "from"),
        (moves["production 2->3"], v3, "used", "to"),
        (moves["production 3->4"], v3, "used", "from"),
        (moves["candidate -->3"], v3, "used", "to"),
    }
    # The same lineage under `3`, and the other tenant's identically named adapter stays out.
    assert w.http.get(url("acme", "support", "3"), headers=acme.headers).json() == g


@pytest.mark.smoke
def test_prov_json(w: World) -> None:
    acme = w.tenant("acme")
    c = three_generations(w, acme)
    resp = w.http.get(url("acme", "support", "v3", format="prov"), headers=acme.headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    doc = resp.json()
    v1, v2, v3 = (f"loraplex:version/{c.versions[n]}" for n in (1, 2, 3))
    upload = f"loraplex:upload/{c.versions[1]}"
    job2, job3 = "loraplex:job/job-2", "loraplex:job/job-3"
    me = f"loraplex:agent/{acme.client_id}"
    assert doc["prefix"]["loraplex"] == "urn:loraplex:"
    assert doc["prefix"]["prov"] == "http://www.w3.org/ns/prov#"
    assert set(doc) == {
        "prefix",
        "entity",
        "activity",
        "agent",
        "wasDerivedFrom",
        "used",
        "wasGeneratedBy",
        "wasAttributedTo",
        "wasAssociatedWith",
    }
    assert len(doc["entity"]) == 3 + 3 + 1 + 3  # versions, datasets, base model, evals
    ver = doc["entity"][v3]
    assert ver["prov:type"] == {"$": "loraplex:AdapterVersion", "type": "prov:QUALIFIED_NAME"}
    assert ver["prov:label"] == "support@v3" and ver["loraplex:version"] == 3
    assert ver["loraplex:created_at"]["type"] == "xsd:dateTime"
    assert dt.datetime.fromisoformat(ver["loraplex:created_at"]["$"]) == T0 + dt.timedelta(days=3)
    assert ver["loraplex:trigger_ref"]["type"] == "rdf:JSON"
    assert "loraplex:job_id" in ver and "loraplex:job_id" not in doc["entity"][v1]  # no nulls
    moves = [f"loraplex:alias_event/{i}" for i in c.alias_events.values()]
    assert set(doc["activity"]) == {upload, job2, job3, *moves}
    assert doc["activity"][upload]["prov:type"]["$"] == "loraplex:Upload"
    first = doc["activity"][f"loraplex:alias_event/{c.alias_events['production -->1']}"]
    assert first["prov:startTime"] == (T0 + dt.timedelta(days=1, hours=2)).isoformat()
    assert set(doc["agent"]) == {me, "loraplex:agent/ops-scheduler"}

    def pairs(kind: str, a: str, b: str) -> set[tuple[str, str]]:
        rel = doc[kind]
        assert all(k.startswith("_:") for k in rel)
        return {(r[a], r[b]) for r in rel.values()}

    assert pairs("wasGeneratedBy", "prov:entity", "prov:activity") == {
        (v1, upload),
        (v2, job2),
        (v3, job3),
    }
    assert pairs("wasAssociatedWith", "prov:activity", "prov:agent") == {
        (upload, me),
        (job2, me),
        (job3, "loraplex:agent/ops-scheduler"),
    }
    assert pairs("wasAttributedTo", "prov:entity", "prov:agent") == {
        (v1, me),
        (v2, me),
        (v3, "loraplex:agent/ops-scheduler"),
    }
    derived = pairs("wasDerivedFrom", "prov:generatedEntity", "prov:usedEntity")
    assert {(v3, v2), (v2, v1)} <= derived
    assert (v3, f"loraplex:dataset/{c.datasets['support@2']}") in derived
    used = {(r["prov:activity"], r["prov:entity"], r["prov:role"]) for r in doc["used"].values()}
    assert (job2, f"loraplex:dataset/{c.datasets['heldout@1']}", "validation") in used
    assert (upload, f"loraplex:base_model/{c.base_digest}", "base_model") in used
    assert (f"loraplex:alias_event/{c.alias_events['production 2->3']}", v3, "to") in used


@pytest.mark.smoke
def test_who_may_read(w: World) -> None:
    acme, globex = w.tenant("acme"), w.tenant("globex")
    three_generations(w, acme)
    seed_chain(w.stack, uuid.UUID(globex.tenant_id), creator=globex.client_id, depth=2)
    assert w.http.get(url("acme", "support", "v3"), headers=globex.headers).status_code == 404
    theirs = w.http.get(url("globex", "support", "v2"), headers=globex.headers)
    assert (
        theirs.status_code == 200
        and len([n for n in theirs.json()["nodes"] if n["type"] == "adapter_version"]) == 2
    )
    for reader in (w.auditor, w.ops):
        assert w.http.get(url("acme", "support", "v3"), headers=reader.headers).status_code == 200
    narrow = w.bearer(acme.client_id, acme.secret, scope="datasets:read")
    assert w.http.get(url("acme", "support", "v3"), headers=narrow).status_code == 403
    assert w.http.get(url("acme", "support", "v3")).status_code == 401
    missing = w.http.get(url("acme", "support", "v9"), headers=acme.headers)
    assert missing.status_code == 404 and missing.json()["error"] == "NotFound"
    assert w.http.get(url("acme", "nope", "v1"), headers=acme.headers).status_code == 404
    assert w.http.get(url("acme", "support", "x1"), headers=acme.headers).status_code == 422
    bad = w.http.get(url("acme", "support", "v1", format="dot"), headers=acme.headers)
    assert bad.status_code == 422


@pytest.mark.smoke
def test_statement_count_does_not_grow_with_the_chain(w: World) -> None:
    acme = w.tenant("acme")
    tid = uuid.UUID(acme.tenant_id)
    seed_chain(w.stack, tid, creator=acme.client_id, depth=3, name="short")
    seed_chain(w.stack, tid, creator=acme.client_id, depth=30, name="long")
    counts = {}
    for name, version in (("short", "v3"), ("long", "v30"), ("long", "v2")):
        with statements(w) as seen:
            resp = w.http.get(url("acme", name, version), headers=acme.headers)
        assert resp.status_code == 200, resp.text
        counts[(name, version)] = [
            s for s in seen if s.lstrip().upper().startswith(("SELECT", "WITH"))
        ]
    long_nodes = w.http.get(url("acme", "long", "v30"), headers=acme.headers).json()["nodes"]
    assert sum(n["type"] == "adapter_version" for n in long_nodes) == 30
    sizes = {k: len(v) for k, v in counts.items()}
    assert len(set(sizes.values())) == 1, sizes
    # caller + tenant (dependencies), adapter, chain CTE, datasets, evals, alias events, bases
    assert next(iter(sizes.values())) == 10, counts[("short", "v3")]
    assert sum("RECURSIVE" in s.upper() for s in counts[("long", "v30")]) == 1
