"""The lineage graph as W3C PROV-JSON (https://www.w3.org/Submission/prov-json/).

Mapping: versions, datasets, base models, evals, the traffic a dataset was curated from and the
teacher answers a dataset was labelled with (the dataset wasDerivedFrom them) are entities;
training jobs, uploads, alias moves, traffic split changes, serving periods and the triggers of
automatic retrains (a scheduled run, a drift check: the job wasInformedBy it) are activities;
creators are agents. In PROV only an activity `used` something, so "version used dataset"
becomes: the version's generating activity (its job, or its upload) used the dataset, and the
version wasDerivedFrom the dataset through that activity. A version with neither a job nor an
upload (e.g. still queued) keeps only the derivation.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from typing import Any

from registry.lineage.schemas import LineageGraph, Node

PREFIX = {
    "loraplex": "urn:loraplex:",
    "prov": "http://www.w3.org/ns/prov#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
}
ENTITY_TYPES = {
    "adapter_version": "loraplex:AdapterVersion",
    "dataset": "loraplex:DatasetVersion",
    "base_model": "loraplex:BaseModel",
    "eval": "loraplex:Evaluation",
    "traffic": "loraplex:Traffic",
    "teacher": "loraplex:TeacherAnswers",
}
# Relation map keys and the short prefix of their generated ids.
RELATIONS = {
    "wasDerivedFrom": "wdf",
    "used": "u",
    "wasGeneratedBy": "wgb",
    "wasAttributedTo": "wat",
    "wasAssociatedWith": "waw",
    "wasInformedBy": "wib",
}
TRIGGER_TYPES = {"schedule": "loraplex:ScheduledRun", "drift": "loraplex:DriftCheck"}


def qname(node_id: str) -> str:
    """'version:<uuid>' -> 'loraplex:version/<uuid>'."""
    kind, _, key = node_id.partition(":")
    return f"loraplex:{kind}/{key}"


def literal(value: Any) -> Any:
    """A PROV-JSON attribute value: JSON strings, numbers and booleans as they are; times as
    xsd:dateTime; objects and lists as rdf:JSON text."""
    if isinstance(value, dt.datetime):
        return {"$": value.isoformat(), "type": "xsd:dateTime"}
    if isinstance(value, dict | list):
        return {"$": json.dumps(value, sort_keys=True, default=str), "type": "rdf:JSON"}
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _qualified(name: str) -> dict[str, str]:
    return {"$": name, "type": "prov:QUALIFIED_NAME"}


def _attributes(node: Node) -> dict[str, Any]:
    out: dict[str, Any] = {"prov:label": node.label}
    out |= {f"loraplex:{k}": literal(v) for k, v in node.attrs.items() if v is not None}
    return out


class _Document:
    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = defaultdict(dict)
        self._seen: set[tuple[str, str]] = set()

    def relate(self, kind: str, **attrs: Any) -> None:
        key = (kind, json.dumps(attrs, sort_keys=True))
        if key in self._seen:
            return
        self._seen.add(key)
        rel_id = f"_:{RELATIONS[kind]}{len(self.records[kind]) + 1}"
        self.records[kind][rel_id] = {k.replace("_", ":", 1): v for k, v in attrs.items()}


def to_prov(graph: LineageGraph) -> dict[str, Any]:
    doc = _Document()
    nodes = {n.id: n for n in graph.nodes}
    generated_by: dict[str, str] = {}  # version node id -> activity qname
    for n in graph.nodes:
        if n.type in ENTITY_TYPES:
            doc.records["entity"][qname(n.id)] = {
                "prov:type": _qualified(ENTITY_TYPES[n.type]),
                **_attributes(n),
            }
        elif n.type == "job":
            doc.records["activity"][qname(n.id)] = {
                "prov:type": _qualified("loraplex:TrainingJob"),
                **_attributes(n),
            }
        elif n.type == "alias_event":
            at = n.attrs["occurred_at"]
            when = at.isoformat() if isinstance(at, dt.datetime) else str(at)
            doc.records["activity"][qname(n.id)] = {
                "prov:type": _qualified("loraplex:AliasMove"),
                "prov:startTime": when,
                "prov:endTime": when,
                **_attributes(n),
            }
        elif n.type == "split_event":
            at = n.attrs["occurred_at"]
            when = at.isoformat() if isinstance(at, dt.datetime) else str(at)
            doc.records["activity"][qname(n.id)] = {
                "prov:type": _qualified("loraplex:TrafficSplitChange"),
                "prov:startTime": when,
                "prov:endTime": when,
                **_attributes(n),
            }
        elif n.type == "serving":
            first, last = n.attrs["first_request_at"], n.attrs["last_request_at"]
            doc.records["activity"][qname(n.id)] = {
                "prov:type": _qualified("loraplex:Serving"),
                "prov:startTime": first.isoformat() if isinstance(first, dt.datetime) else first,
                "prov:endTime": last.isoformat() if isinstance(last, dt.datetime) else last,
                **_attributes(n),
            }
        elif n.type == "trigger":
            doc.records["activity"][qname(n.id)] = {
                "prov:type": _qualified(
                    TRIGGER_TYPES.get(n.attrs.get("kind", ""), "loraplex:Trigger")
                ),
                **_attributes(n),
            }
        elif n.type == "agent":
            doc.records["agent"][qname(n.id)] = _attributes(n)
        if (
            n.type == "adapter_version"
            and n.attrs.get("trigger") == "upload"
            and (n.attrs.get("job_id") is None)
        ):
            upload = qname(n.id).replace("loraplex:version/", "loraplex:upload/")
            doc.records["activity"][upload] = {
                "prov:type": _qualified("loraplex:Upload"),
                "prov:label": f"upload of {n.label}",
            }
            generated_by[n.id] = upload
    for e in graph.edges:
        if e.relation == "wasGeneratedBy":
            generated_by[e.source] = qname(e.target)
    for e in graph.edges:
        src, dst = qname(e.source), qname(e.target)
        if e.relation == "wasDerivedFrom":
            doc.relate("wasDerivedFrom", prov_generatedEntity=src, prov_usedEntity=dst)
        elif e.relation == "wasAttributedTo":
            doc.relate("wasAttributedTo", prov_entity=src, prov_agent=dst)
            if e.source in generated_by:
                doc.relate(
                    "wasAssociatedWith", prov_activity=generated_by[e.source], prov_agent=dst
                )
        elif e.relation == "wasInformedBy":
            doc.relate("wasInformedBy", prov_informed=src, prov_informant=dst)
        elif e.relation == "used" and nodes[e.source].type == "serving":
            doc.relate("used", prov_activity=src, prov_entity=dst, prov_role="served_adapter")
        elif e.relation == "used" and nodes[e.source].type in ("alias_event", "split_event"):
            doc.relate("used", prov_activity=src, prov_entity=dst, prov_role=e.attrs["role"])
        elif e.relation == "used":  # a version's inputs: dataset or base model
            activity = generated_by.get(e.source)
            role = e.attrs.get("role", "base_model")
            if activity is not None:
                doc.relate("used", prov_activity=activity, prov_entity=dst, prov_role=role)
                doc.relate(
                    "wasDerivedFrom",
                    prov_generatedEntity=src,
                    prov_usedEntity=dst,
                    prov_activity=activity,
                )
            else:
                doc.relate("wasDerivedFrom", prov_generatedEntity=src, prov_usedEntity=dst)
    for version, activity in generated_by.items():
        doc.relate("wasGeneratedBy", prov_entity=qname(version), prov_activity=activity)
    order = ("entity", "activity", "agent", *RELATIONS)
    return {"prefix": dict(PREFIX), **{k: doc.records[k] for k in order if doc.records[k]}}
