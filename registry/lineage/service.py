"""Lineage of an adapter version: what it was made from, by whom, how it scored, and every
alias move and traffic split change that touched it, back through its parent chain to the first
version."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from registry.adapters.resolve import parse_version
from registry.adapters.service import adapters
from registry.errors import NotFound
from registry.lineage.repository import LineageRepository
from registry.lineage.schemas import Edge, LineageGraph, Node, NodeType, Relation
from registry.models import (
    AdapterVersion,
    AliasEvent,
    BaseModel,
    Dataset,
    Eval,
    Tenant,
    TrafficSplitEvent,
)


def version_node_id(version_id: uuid.UUID) -> str:
    return f"version:{version_id}"


class _Graph:
    """Nodes keyed by id (first one wins), edges without duplicates, in insertion order."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.edges: dict[tuple[str, str, str, str], Edge] = {}

    def node(self, node_id: str, type_: NodeType, label: str, **attrs: Any) -> str:
        if node_id not in self.nodes:
            self.nodes[node_id] = Node(id=node_id, type=type_, label=label, attrs=attrs)
        return node_id

    def edge(self, source: str, target: str, relation: Relation, **attrs: Any) -> None:
        key = (source, target, relation, repr(sorted(attrs.items())))
        self.edges.setdefault(
            key, Edge(source=source, target=target, relation=relation, attrs=attrs)
        )


class LineageService:
    def graph(self, session: Session, *, tenant: Tenant, name: str, ref: str) -> LineageGraph:
        """The lineage graph of version `ref` ('7' or 'v7') of adapter `name`.

        Ten statements whatever the chain length or the tenant's size: caller and tenant
        (in the dependencies), the adapter, the parent chain (one recursive CTE), then the
        chain's datasets, evals, alias events, split events, base models and served periods with
        one IN-list query each."""
        number = parse_version(ref)
        adapter = adapters.get(session, tenant=tenant, name=name)
        repo = LineageRepository(session, tenant.id)
        chain = repo.chain(adapter.id, number)
        if not chain:
            raise NotFound(f"version {number} of adapter '{adapter.name}' not found")
        rows = [v for v, _ in chain]
        ids = [v.id for v in rows]
        g = _Graph()
        bases = repo.base_models(ids)
        for i, (version, adapter_name) in enumerate(chain):
            self._version(g, version, adapter_name, bases.get(version.base_model_id))
            if i + 1 < len(rows) and version.parent_id == rows[i + 1].id:
                g.edge(
                    version_node_id(version.id), version_node_id(rows[i + 1].id), "wasDerivedFrom"
                )
        for version_id, dataset, role in repo.datasets(ids):
            self._dataset(g, version_node_id(version_id), dataset, role)
        for ev in repo.evals(ids):
            self._eval(g, ev)
        self._alias_events(g, rows, repo.alias_events(rows))
        self._split_events(g, rows, repo.split_events(rows))
        served_nodes, served_edges = self.served_periods(session, tenant=tenant, chain=rows)
        for n in served_nodes:
            g.nodes.setdefault(n.id, n)
        for e in served_edges:
            g.edge(e.source, e.target, e.relation, **e.attrs)
        self._roles_on_dataset_nodes(g)
        return LineageGraph(
            nodes=list(g.nodes.values()),
            edges=list(g.edges.values()),
            root=version_node_id(rows[0].id),
        )

    def served_periods(
        self, session: Session, *, tenant: Tenant, chain: Sequence[AdapterVersion]
    ) -> tuple[list[Node], list[Edge]]:
        """What served when: per version of the chain, the period in which it answered the
        tenant's traffic through the gateway (successful requests, from the usage records), with
        the request count, distinct clients, tokens and tool calls. A `serving` node `used` the
        version."""
        nodes: list[Node] = []
        edges: list[Edge] = []
        rows = LineageRepository(session, tenant.id).served([v.id for v in chain])
        numbers = {v.id: v.version for v in chain}
        for version_id, requests, clients, first, last, tokens, tool_calls in rows:
            node_id = f"serving:{version_id}"
            nodes.append(
                Node(
                    id=node_id,
                    type="serving",
                    label=f"v{numbers[version_id]} served {requests} requests",
                    attrs={
                        "requests": int(requests),
                        "clients": int(clients),
                        "tokens": int(tokens),
                        "tool_calls": int(tool_calls),
                        "first_request_at": first,
                        "last_request_at": last,
                    },
                )
            )
            edges.append(Edge(source=node_id, target=version_node_id(version_id), relation="used"))
        return nodes, edges

    @staticmethod
    def _version(g: _Graph, v: AdapterVersion, adapter_name: str, base: BaseModel | None) -> None:
        vid = g.node(
            version_node_id(v.id),
            "adapter_version",
            f"{adapter_name}@v{v.version}",
            adapter=adapter_name,
            version=v.version,
            status=v.status,
            trigger=v.trigger,
            trigger_ref=v.trigger_ref,
            manifest_digest=v.manifest_digest,
            config_hash=v.config_hash,
            base_model_digest=v.base_model_digest,
            job_id=v.job_id,
            created_by=v.created_by,
            created_at=v.created_at,
            ready_at=v.ready_at,
        )
        bid = g.node(
            f"base_model:{v.base_model_digest}",
            "base_model",
            base.name if base else "?",
            name=base.name if base else None,
            digest=v.base_model_digest,
            uri=base.uri if base else None,
        )
        g.edge(vid, bid, "used")
        if v.job_id is not None:
            job = g.node(f"job:{v.job_id}", "job", f"job {v.job_id}", job_id=v.job_id)
            g.edge(vid, job, "wasGeneratedBy")
            trigger = _trigger_node(g, v)
            if trigger is not None:
                g.edge(job, trigger, "wasInformedBy")
        agent = g.node(f"agent:{v.created_by}", "agent", v.created_by, subject=v.created_by)
        g.edge(vid, agent, "wasAttributedTo")

    @staticmethod
    def _dataset(g: _Graph, version_id: str, d: Dataset, role: str) -> None:
        did = g.node(
            f"dataset:{d.id}",
            "dataset",
            f"{d.name}@v{d.version}",
            name=d.name,
            version=d.version,
            sha256=d.sha256,
            rows=d.rows,
            role=role,
            **({"owner": "platform"} if d.tenant_id is None else {}),
        )
        g.edge(version_id, did, "used", role=role)
        origin = d.origin or {}
        if origin.get("kind") == "traffic":
            g.edge(did, _traffic_node(g, d, origin), "wasDerivedFrom")
        elif origin.get("kind") == "teacher":
            g.edge(did, _teacher_node(g, d, origin), "wasDerivedFrom")

    @staticmethod
    def _eval(g: _Graph, ev: Eval) -> None:
        eid = g.node(
            f"eval:{ev.id}",
            "eval",
            f"{ev.suite} ({ev.subject})",
            suite=ev.suite,
            subject=ev.subject,
            metrics=ev.metrics,
            dataset_id=str(ev.dataset_id) if ev.dataset_id else None,
            suite_id=str(ev.suite_id) if ev.suite_id else None,
            created_by=ev.created_by,
            created_at=ev.created_at,
        )
        g.edge(eid, version_node_id(ev.version_id), "wasDerivedFrom")
        if ev.subject == "base_model":  # a baseline: the base model scored on this eval set
            version = g.nodes[version_node_id(ev.version_id)]
            g.edge(eid, f"base_model:{version.attrs['base_model_digest']}", "wasDerivedFrom")

    @staticmethod
    def _alias_events(
        g: _Graph, chain: Sequence[AdapterVersion], events: Sequence[AliasEvent]
    ) -> None:
        by_number = {(v.adapter_id, v.version): version_node_id(v.id) for v in chain}
        for e in events:
            moved = f"v{e.from_version}" if e.from_version else "-"
            to = f"v{e.to_version}" if e.to_version else "-"
            aid = g.node(
                f"alias_event:{e.id}",
                "alias_event",
                f"{e.alias}: {moved} -> {to}",
                alias=e.alias,
                **{"from": e.from_version, "to": e.to_version},
                actor=e.actor,
                reason=e.reason,
                occurred_at=e.occurred_at,
            )
            for role, number in (("from", e.from_version), ("to", e.to_version)):
                target = by_number.get((e.adapter_id, number)) if number else None
                if target is not None:
                    g.edge(aid, target, "used", role=role)

    @staticmethod
    def _split_events(
        g: _Graph, chain: Sequence[AdapterVersion], events: Sequence[TrafficSplitEvent]
    ) -> None:
        """A split change `used` each version of the chain it gave traffic to (role 'to', with
        its weight) or took traffic from (role 'from')."""
        by_number = {(v.adapter_id, v.version): version_node_id(v.id) for v in chain}

        def shown(arms: Sequence[dict[str, Any]]) -> str:
            return " / ".join(f"v{a['version']} {a['weight']}%" for a in arms) or "production"

        for e in events:
            how = "automatic rollback" if e.automatic else "split"
            sid = g.node(
                f"split_event:{e.id}",
                "split_event",
                f"{how}: {shown(e.previous)} -> {shown(e.arms)}",
                arms=e.arms,
                previous=e.previous,
                actor=e.actor,
                reason=e.reason,
                automatic=e.automatic,
                details=e.details,
                occurred_at=e.occurred_at,
            )
            for role, arms in (("from", e.previous), ("to", e.arms)):
                for a in arms:
                    target = by_number.get((e.adapter_id, int(a.get("version") or 0)))
                    if target is not None:
                        g.edge(sid, target, "used", role=role, weight=a.get("weight"))

    @staticmethod
    def _roles_on_dataset_nodes(g: _Graph) -> None:
        """A dataset used in two roles across the chain says so: role 'train,validation'."""
        roles: dict[str, set[str]] = {}
        for e in g.edges.values():
            if e.target.startswith("dataset:"):
                roles.setdefault(e.target, set()).add(str(e.attrs["role"]))
        for node_id, found in roles.items():
            g.nodes[node_id].attrs["role"] = ",".join(sorted(found))


def _traffic_node(g: _Graph, d: Dataset, origin: dict[str, Any]) -> str:
    """The production traffic a curated dataset was made from: window, filters and counts."""
    window = origin.get("window") or {}
    since, until = str(window.get("since", "?"))[:10], str(window.get("until", "?"))[:10]
    adapter = (origin.get("filters") or {}).get("adapter", "?")
    label = (
        f"traffic of {adapter} {since}..{until}: {origin.get('matched', 0)} traces, "
        f"{origin.get('corrected', 0)} corrected"
    )
    attrs = {k: v for k, v in origin.items() if k != "kind"}
    return g.node(f"traffic:{d.id}", "traffic", label, **attrs)


def _teacher_node(g: _Graph, d: Dataset, origin: dict[str, Any]) -> str:
    """The teacher model whose answers (kept by the checks) a labelled dataset holds."""
    label = (
        f"teacher {origin.get('teacher', '?')} ({origin.get('model', '?')}): "
        f"{origin.get('sent', 0)} sent, {origin.get('kept', 0)} kept, "
        f"{_total(origin.get('refused'))} refused"
    )
    attrs = {k: v for k, v in origin.items() if k != "kind"}
    return g.node(f"teacher:{d.id}", "teacher", label, **attrs)


def _total(value: Any) -> int:
    """A count, or counts by reason ({"regex": 2, "empty": 1})."""
    if isinstance(value, dict):
        return sum(int(v) for v in value.values() if isinstance(v, int | float))
    return int(value) if isinstance(value, int | float) else 0


def _trigger_node(g: _Graph, v: AdapterVersion) -> str | None:
    """Why an automatic retrain started: the schedule's due time, or the drift that crossed."""
    ref = v.trigger_ref or {}
    if v.trigger == "schedule" and "schedule" in ref:
        when = ref.get("schedule", {})
        label = f"schedule '{when.get('cron')}' ({when.get('timezone')}) due {ref.get('due_at')}"
        return g.node(f"trigger:{v.id}", "trigger", label, kind="schedule", **ref)
    if v.trigger == "drift" and "drift" in ref:
        d = ref["drift"]
        label = (
            f"drift: {d.get('metric')} {float(d.get('value', 0)):.3g} > {d.get('threshold')} "
            f"on {d.get('sample_size')} prompts"
        )
        return g.node(f"trigger:{v.id}", "trigger", label, kind="drift", **ref)
    return None


lineage = LineageService()
