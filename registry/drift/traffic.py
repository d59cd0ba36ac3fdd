"""Traffic samples from a tenant's own inference stack (the gateway writes its own).

A batch is checked whole before anything is stored: every sample must be a prompt in the
dataset row format, chat `messages` (with at least one user turn) or a `prompt` string.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from registry.adapters.repository import VersionRepository
from registry.adapters.service import adapters
from registry.adapters.versions import versions
from registry.aliases.repository import AliasRepository
from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.drift.repository import DriftRepository
from registry.drift.schemas import MAX_SAMPLE_BYTES, TrafficIn, TrafficOut
from registry.errors import Conflict, Unprocessable, require
from registry.models import Tenant, TrafficSample
from registry.traffic.capture import redactor_of
from registry.traffic.repository import TrafficRepository

_ROLES = frozenset({"system", "user", "assistant"})
_SHOWN_PROBLEMS = 10


def sample_problem(sample: dict[str, Any]) -> str | None:
    keys = set(sample)
    if keys == {"prompt"}:
        prompt = sample["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            return '"prompt" must be a non-empty string'
    elif keys == {"messages"}:
        messages = sample["messages"]
        if not isinstance(messages, list) or not messages:
            return '"messages" must be a non-empty list of {role, content}'
        for i, msg in enumerate(messages, 1):
            if not isinstance(msg, dict) or msg.get("role") not in _ROLES:
                return f"message {i}: role must be system, user or assistant"
            content = msg.get("content")
            if not isinstance(content, str) or not content.strip():
                return f"message {i}: content must be a non-empty string"
        if not any(m["role"] == "user" for m in messages):
            return "no user message: a prompt needs at least one"
    else:
        return f'expected {{"messages": [...]}} or {{"prompt": "..."}}, got keys {sorted(keys)}'
    if len(json.dumps(sample, ensure_ascii=False).encode()) > MAX_SAMPLE_BYTES:
        return f"larger than {MAX_SAMPLE_BYTES // 1024} KiB"
    return None


def ingest(session: Session, *, actor: Principal, tenant: Tenant, data: TrafficIn) -> TrafficOut:
    adapter = adapters.get(session, tenant=tenant, name=data.adapter)
    if not tenant.traffic_logging:
        raise Conflict(
            f"traffic logging is off for tenant '{tenant.slug}'; "
            "turn it on with PUT /v1/tenants/{tenant}/traffic-logging"
        )
    if data.version is not None:
        version = versions.get(session, adapter=adapter, number=data.version)
    else:
        alias = AliasRepository(session, tenant.id).get(adapter.id, "production")
        if alias is None:
            raise Conflict(
                f"adapter '{adapter.name}' has no production version; "
                "say which version answered these prompts with `version`"
            )
        found = VersionRepository(session, tenant.id).get_by_id(alias.version_id)
        version = require(found, "the production version")
    problems = [
        f"samples[{i}]: {problem}"
        for i, sample in enumerate(data.samples)
        if (problem := sample_problem(sample)) is not None
    ]
    if problems:
        raise Unprocessable(
            f"{len(problems)} of {len(data.samples)} samples are not prompts; nothing was stored",
            problems=problems[:_SHOWN_PROBLEMS],
        )
    repo = DriftRepository(session, tenant.id)
    redactor = redactor_of(TrafficRepository(session, tenant.id).capture(adapter.id))
    redacted = 0
    for sample in data.samples:
        record, counts = redactor.redact(sample)  # before anything is stored, as the gateway does
        redacted += bool(counts)
        repo.add(
            TrafficSample(
                tenant_id=tenant.id,
                adapter_id=adapter.id,
                version_id=version.id,
                source="api",
                record=record,
                redactions=counts,
            )
        )
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="traffic.ingest",
        target_type="adapter",
        target_id=str(adapter.id),
        tenant_id=tenant.id,
        details={
            "adapter": adapter.name,
            "version": version.version,
            "samples": len(data.samples),
            "redacted": redacted,
        },
    )
    return TrafficOut(
        adapter=adapter.name, version=version.version, accepted=len(data.samples), redacted=redacted
    )
