"""Captured traffic without the gateway: trace objects in the store and their rows, as a gateway
flush writes them (registry/traffic/traces.py), for tests of retention, erasure, listing,
feedback and curation.

    seeded = seed_traces(world, store, "acme", "support", 1, traces=[{...}, ...],
                         created_at=now - dt.timedelta(days=40))

A trace is completed with defaults: a chat request `{"messages": [user "hello <i>"]}`, an
assistant answer, `finish_reason` "stop", a fresh `request_id`. Keys given win. With
`captured="prompts"` no object is written (rows only, like prompts-only capture). With
`usage=True` (and a version) a `usage_records` row per trace is written too, so that feedback can
find the request.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db import run_unit_of_work
from registry.models import (
    Adapter,
    AdapterVersion,
    Feedback,
    Tenant,
    TrafficSample,
    UsageRecord,
)
from registry.models.enums import CaptureMode
from registry.storage import ObjectStore
from registry.traffic.traces import batch_key, encode_batch
from tests.conftest import Caller, World
from tests.lora_files import make_adapter
from tests.registry.adapters.conftest import AdapterWorld

__all__ = ["SeedWorld", "SeededTrace", "seed_traces", "sw"]


@dataclass(frozen=True)
class SeededTrace:
    request_id: str
    row_id: int
    object_key: str | None
    object_line: int | None
    trace: dict[str, Any]


def seed_traces(
    target: Any,
    store: ObjectStore,
    tenant: str,
    adapter: str,
    version: int | None,
    traces: Sequence[dict[str, Any]] = ({},),
    created_at: dt.datetime | None = None,
    *,
    captured: str = "full",
    usage: bool = True,
) -> list[SeededTrace]:
    """Write `traces` of `tenant`'s (slug) `adapter` (name) answered by `version` (a number, or
    None), all at `created_at` (default now), as one batch object + rows. `target` is a World
    (committed here) or a Session (flushed; the caller commits)."""
    if isinstance(target, Session):
        return _seed(target, store, tenant, adapter, version, traces, created_at, captured, usage)
    for session in run_unit_of_work(target.stack.app.state.sessionmaker):
        out = _seed(session, store, tenant, adapter, version, traces, created_at, captured, usage)
    return out


def _seed(
    session: Session,
    store: ObjectStore,
    tenant_slug: str,
    adapter_name: str,
    version: int | None,
    traces: Sequence[dict[str, Any]],
    created_at: dt.datetime | None,
    captured: str,
    usage: bool,
) -> list[SeededTrace]:
    when = created_at or dt.datetime.now(dt.UTC)
    tenant = session.execute(select(Tenant).where(Tenant.slug == tenant_slug)).scalar_one()
    ad = session.execute(
        select(Adapter).where(Adapter.tenant_id == tenant.id, Adapter.name == adapter_name)
    ).scalar_one()
    version_id = None
    if version is not None:
        version_id = session.execute(
            select(AdapterVersion.id).where(
                AdapterVersion.adapter_id == ad.id, AdapterVersion.version == version
            )
        ).scalar_one()
    full = [_complete(t, i, adapter_name, version, when) for i, t in enumerate(traces)]
    mode = CaptureMode(captured)
    key = None
    if mode is CaptureMode.FULL:
        key = batch_key(tenant.id, ad.id, when)
        store.put_bytes(key, encode_batch(full))
    out = []
    for line, trace in enumerate(full):
        row = TrafficSample(
            tenant_id=tenant.id,
            adapter_id=ad.id,
            version_id=version_id,
            source="gateway",
            record=sample_record(trace),
            request_id=trace["request_id"],
            captured=mode,
            object_key=key,
            object_line=line if key else None,
            redactions=trace["redactions"],
            created_at=when,
        )
        session.add(row)
        if usage and version_id is not None:
            session.add(_usage(tenant.id, ad.id, version_id, trace, when))
        session.flush()
        out.append(SeededTrace(trace["request_id"], row.id, key, row.object_line, trace))
    return out


def sample_record(trace: dict[str, Any]) -> dict[str, Any]:
    """The prompt in the dataset row format, as the gateway stores it in `record`."""
    request = trace["request"]
    if "prompt" in request:
        return {"prompt": request["prompt"]}
    tools = ("tools", "tool_choice", "parallel_tool_calls")
    return {"messages": request["messages"], **{k: request[k] for k in tools if k in request}}


def _complete(
    given: dict[str, Any], i: int, adapter: str, version: int | None, when: dt.datetime
) -> dict[str, Any]:
    trace: dict[str, Any] = {
        "request_id": f"req-{uuid.uuid4().hex[:20]}",
        "created_at": when.isoformat(),
        "adapter": adapter,
        "version": version,
        "endpoint": "chat.completions",
        "request": {"messages": [{"role": "user", "content": f"hello {i}"}]},
        "response": {"role": "assistant", "content": f"hi there {i}"},
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 5, "completion_tokens": 4},
        "redactions": {},
    }
    trace.update(given)
    if "prompt" in trace["request"] and "endpoint" not in given:
        trace["endpoint"] = "completions"
        trace["response"] = given.get("response", {"text": f"hi there {i}"})
    return trace


def _usage(
    tenant_id: uuid.UUID,
    adapter_id: uuid.UUID,
    version_id: uuid.UUID,
    trace: dict[str, Any],
    when: dt.datetime,
) -> UsageRecord:
    return UsageRecord(
        tenant_id=tenant_id,
        adapter_id=adapter_id,
        version_id=version_id,
        request_id=trace["request_id"],
        client_id="seed",
        model=trace["adapter"],
        endpoint=trace["endpoint"],
        stream=False,
        status_code=200,
        prompt_tokens=trace["usage"].get("prompt_tokens", 0),
        completion_tokens=trace["usage"].get("completion_tokens", 0),
        latency_ms=1.0,
        started_at=when,
    )


class SeedWorld(AdapterWorld):
    """AdapterWorld (base model 'tiny', tenant acme, adapter 'support') plus versions 1 and 2
    of 'support', acme's adapter 'billing' and tenant globex with its own 'support' (v1)."""

    def __init__(self, world: World, base_dir: Path) -> None:
        super().__init__(world, base_dir)
        for _ in range(2):
            assert self.upload().status_code == 201
        self.add_adapter("acme", "billing", self.acme.headers)
        self.globex: Caller = world.tenant("globex")
        self.add_adapter("globex", "support", self.globex.headers)
        config, weights = make_adapter("tiny")
        files = {
            "adapter_config.json": ("adapter_config.json", config),
            "adapter_model.safetensors": ("adapter_model.safetensors", weights),
        }
        resp = self.http.post(
            "/v1/tenants/globex/adapters/support/versions", files=files, headers=self.globex.headers
        )
        assert resp.status_code == 201, resp.text

    def add_adapter(self, tenant: str, name: str, headers: dict[str, str]) -> None:
        resp = self.http.post(
            f"/v1/tenants/{tenant}/adapters",
            headers=headers,
            json={"name": name, "base_model": "tiny", "training": {"rank": 4}},
        )
        assert resp.status_code == 201, resp.text

    @property
    def store(self) -> ObjectStore:
        return self.world.stack.store

    def seed(
        self,
        tenant: str = "acme",
        adapter: str = "support",
        version: int | None = 1,
        traces: Sequence[dict[str, Any]] = ({},),
        created_at: dt.datetime | None = None,
        **kwargs: Any,
    ) -> list[SeededTrace]:
        return seed_traces(
            self.world, self.store, tenant, adapter, version, traces, created_at, **kwargs
        )

    def trace_keys(self) -> list[str]:
        """Every trace object in the store, of every tenant."""
        return sorted(k for k in self.store.list_keys("tenants/") if "/traces/" in k)

    def feedback(self, seeded: SeededTrace, rating: int, **fields: Any) -> None:
        """A feedback row for a seeded trace (straight to the table)."""
        for session in run_unit_of_work(self.world.stack.app.state.sessionmaker):
            usage = session.execute(
                select(UsageRecord).where(UsageRecord.request_id == seeded.request_id)
            ).scalar_one()
            session.add(
                Feedback(
                    tenant_id=usage.tenant_id,
                    adapter_id=usage.adapter_id,
                    version_id=usage.version_id,
                    request_id=seeded.request_id,
                    rating=rating,
                    created_by="seed",
                    **fields,
                )
            )


@pytest.fixture
def sw(world: World, tmp_path: Path) -> SeedWorld:
    return SeedWorld(world, tmp_path / "tiny-base")
