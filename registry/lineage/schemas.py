from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NodeType = Literal[
    "adapter_version",
    "dataset",
    "base_model",
    "job",
    "eval",
    "alias_event",
    "split_event",  # a traffic split change (canary) that gave or took a version's traffic
    "agent",
    "serving",
    "trigger",
    "traffic",  # the production traffic a curated dataset was made from
    "teacher",  # the teacher model whose answers a labelled dataset holds
]
Relation = Literal["wasDerivedFrom", "used", "wasGeneratedBy", "wasAttributedTo", "wasInformedBy"]
LineageFormat = Literal["graph", "prov"]


class Node(BaseModel):
    id: str = Field(description="stable: '<type>:<key>', e.g. 'version:<uuid>', 'job:<id>'")
    type: NodeType
    label: str
    attrs: dict[str, Any] = Field(default_factory=dict)


class Edge(BaseModel):
    """`source` <relation> `target`, read as in W3C PROV: a version wasDerivedFrom its parent."""

    source: str
    target: str
    relation: Relation
    attrs: dict[str, Any] = Field(default_factory=dict)


class LineageGraph(BaseModel):
    nodes: list[Node]
    edges: list[Edge]
    root: str = Field(description="id of the version asked for")


# PROV-JSON records: identifier -> attributes (see registry/lineage/prov.py for the mapping).
ProvRecords = dict[str, dict[str, Any]]


class ProvDocument(BaseModel):
    """A W3C PROV-JSON document (https://www.w3.org/Submission/prov-json/): the lineage graph
    with `?format=prov`. Record kinds with no records are left out."""

    model_config = ConfigDict(extra="forbid")

    prefix: dict[str, str] = Field(description="namespace prefix -> IRI")
    entity: ProvRecords | None = None
    activity: ProvRecords | None = None
    agent: ProvRecords | None = None
    wasDerivedFrom: ProvRecords | None = None  # PROV-JSON spells its keys so
    used: ProvRecords | None = None
    wasGeneratedBy: ProvRecords | None = None
    wasAttributedTo: ProvRecords | None = None
    wasAssociatedWith: ProvRecords | None = None
    wasInformedBy: ProvRecords | None = None
