"""Lineage of a version trained on derived datasets: a dataset curated from traffic
wasDerivedFrom a `traffic` node, one labelled by a teacher wasDerivedFrom a `teacher` node; both
also in the PROV-JSON answer."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from registry.lineage.schemas import ProvDocument
from registry.models import AdapterVersionDataset
from tests.conftest import World
from tests.registry.lineage.conftest import url
from tests.registry.traffic.test_curation import CurationWorld, _store

TEACHER_ORIGIN = {
    "kind": "teacher",
    "teacher": "big",
    "model": "big-70b",
    "sent": 10,
    "kept": 6,
    "refused": {"regex": 3, "empty": 1},
    "failed": 0,
}


def _train_on(cw: CurationWorld, version: int, dataset_ids: list[str]) -> None:
    """Version `version` of 'support' was trained on these datasets (no job needed here)."""
    resp = cw.http.get("/v1/tenants/acme/adapters/support/versions", headers=cw.acme.headers)
    version_id = next(v["id"] for v in resp.json()["items"] if v["version"] == version)
    with cw.world.stack.session() as s:
        for d in dataset_ids:
            s.add(
                AdapterVersionDataset(
                    version_id=uuid.UUID(version_id), dataset_id=uuid.UUID(d), role="train"
                )
            )
        s.commit()


def _node(graph: dict[str, Any], node_id: str) -> dict[str, Any]:
    return next(n for n in graph["nodes"] if n["id"] == node_id)


def test_curated_and_teacher_datasets_in_the_lineage(w: World, tmp_path: Path) -> None:
    cw = CurationWorld(w, tmp_path / "tiny-base")
    resp = cw.curate(name="orders-traffic")
    assert resp.status_code == 201, resp.text
    curated = resp.json()
    rows = [{"prompt": "2+2=", "completion": "4"}]
    teacher = _store(w, rows, name="orders-teacher", origin=TEACHER_ORIGIN)
    _train_on(cw, 2, [curated["id"], str(teacher.id)])

    resp = w.http.get(url("acme", "support", "v2"), headers=cw.acme.headers)
    assert resp.status_code == 200, resp.text
    graph = resp.json()
    dataset, traffic = f"dataset:{curated['id']}", f"traffic:{curated['id']}"
    node = _node(graph, traffic)
    window = curated["traffic"]["window"]
    assert node["type"] == "traffic"
    assert node["label"] == (
        f"traffic of support {window['since'][:10]}..{window['until'][:10]}: 8 traces, 1 corrected"
    )
    assert node["attrs"]["rows"] == 6 and node["attrs"]["skipped"] == {
        "rejected": 1,
        "truncated": 1,
    }
    assert node["attrs"]["filters"]["adapter"] == "support"
    edges = {(e["source"], e["target"], e["relation"]) for e in graph["edges"]}
    assert (graph["root"], dataset, "used") in edges
    assert (dataset, traffic, "wasDerivedFrom") in edges
    tnode = _node(graph, f"teacher:{teacher.id}")
    assert tnode["type"] == "teacher"
    assert tnode["label"] == "teacher big (big-70b): 10 sent, 6 kept, 4 refused"
    assert (f"dataset:{teacher.id}", f"teacher:{teacher.id}", "wasDerivedFrom") in edges

    # Version 1 used neither: no traffic or teacher node.
    v1 = w.http.get(url("acme", "support", "v1"), headers=cw.acme.headers).json()
    assert not [n for n in v1["nodes"] if n["type"] in ("traffic", "teacher")]

    resp = w.http.get(url("acme", "support", "v2", format="prov"), headers=cw.acme.headers)
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    ProvDocument.model_validate(doc)  # only PROV-JSON record kinds
    entity = doc["entity"][f"loraplex:traffic/{curated['id']}"]
    assert entity["prov:type"] == {"$": "loraplex:Traffic", "type": "prov:QUALIFIED_NAME"}
    assert entity["loraplex:matched"] == 8
    assert entity["loraplex:window"]["type"] == "rdf:JSON"
    assert doc["entity"][f"loraplex:teacher/{teacher.id}"]["prov:type"]["$"] == (
        "loraplex:TeacherAnswers"
    )
    derived = {
        (r["prov:generatedEntity"], r["prov:usedEntity"]) for r in doc["wasDerivedFrom"].values()
    }
    assert (
        f"loraplex:dataset/{curated['id']}",
        f"loraplex:traffic/{curated['id']}",
    ) in derived
    assert (f"loraplex:dataset/{teacher.id}", f"loraplex:teacher/{teacher.id}") in derived

    # An auditor reads the same graph; another tenant cannot see it.
    assert w.http.get(url("acme", "support", "v2"), headers=w.auditor.headers).json() == graph
    globex = w.tenant("globex")
    assert w.http.get(url("acme", "support", "v2"), headers=globex.headers).status_code == 404
