from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

NodeType = Literal[
    "adapter_version",
    "dataset",
    "base_model",
    "job",
    "eval",
    "alias_event",
    "agent",
    "serving",
    "trigger",
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
