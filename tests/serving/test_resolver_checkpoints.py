"""The resolver serves a training checkpoint by its id, like a version: manifest files,
sha256-checked, for its own base model only (no engine needed)."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from registry.db import run_unit_of_work
from registry.errors import require
from registry.models import BaseModel, TrainingCheckpoint
from registry.training.lifecycle import artifact_prefix, lifecycle
from registry.training.repository import PlatformJobRepository
from serving.cache import AdapterCache
from serving.resolver import AdapterRefused, RegistryResolver, find_servable
from tests.conftest import World
from tests.lora_files import make_adapter
from tests.registry.training.conftest import JobWorld


def _checkpoint(jw: JobWorld, files: dict[str, bytes]) -> tuple[uuid.UUID, str]:
    job = jw.create_job().json()
    store = jw.world.stack.store
    for session in run_unit_of_work(jw.world.stack.app.state.sessionmaker):
        lifecycle.claim(session, job_id=uuid.UUID(job["id"]), worker="w", lease_seconds=60)
        row = require(PlatformJobRepository(session).find(uuid.UUID(job["id"])), "job")
        prefix = f"{artifact_prefix(row)}/checkpoints/step-4"
        for name, data in files.items():
            store.put_bytes(f"{prefix}/{name}", data)
        manifest = {
            "files": {
                n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
                for n, d in files.items()
            }
        }
        ckpt, _ = lifecycle.record_checkpoint(
            session,
            job=row,
            step=4,
            metrics={"step": 4},
            prefix=prefix,
            manifest=manifest,
            manifest_digest="0" * 64,
            size_bytes=sum(len(d) for d in files.values()),
        )
        checkpoint_id = ckpt.id
    return checkpoint_id, prefix


def _resolver(jw: JobWorld, tmp_path: Path) -> RegistryResolver:
    app = jw.world.stack.app
    with app.state.sessionmaker() as session:
        base = require(session.get(BaseModel, uuid.UUID(jw.base["id"])), "base")
        session.expunge(base)
    return RegistryResolver(
        app.state.settings,
        sessions=app.state.sessionmaker,
        store=jw.world.stack.store,
        base_model=base,
        cache=AdapterCache(tmp_path / "cache", 10 << 20, delete_grace_seconds=0),
    )


def test_a_checkpoint_resolves_to_its_checked_files(world: World, tmp_path: Path) -> None:
    jw = JobWorld(world, tmp_path / "tiny-base")
    config, weights = make_adapter("tiny")
    files = {"adapter_config.json": config, "adapter_model.safetensors": weights}
    checkpoint_id, prefix = _checkpoint(jw, files)
    resolver = _resolver(jw, tmp_path)
    found = resolver.resolve(f"lpx-{checkpoint_id.hex}")
    assert found is not None
    folder, _, hit = found
    assert not hit
    assert (Path(folder) / "adapter_model.safetensors").read_bytes() == weights
    sessions = world.stack.app.state.sessionmaker
    with sessions() as session, pytest.raises(AdapterRefused, match="another base model"):
        find_servable(session, checkpoint_id, uuid.uuid4())


def test_a_tampered_or_dropped_checkpoint_is_refused(world: World, tmp_path: Path) -> None:
    jw = JobWorld(world, tmp_path / "tiny-base")
    config, weights = make_adapter("tiny")
    files = {"adapter_config.json": config, "adapter_model.safetensors": weights}
    checkpoint_id, prefix = _checkpoint(jw, files)
    tampered = weights[:-1] + bytes([weights[-1] ^ 1])
    world.stack.store.put_bytes(f"{prefix}/adapter_model.safetensors", tampered)
    resolver = _resolver(jw, tmp_path)
    with pytest.raises(AdapterRefused, match="refusing"):
        resolver.resolve(f"lpx-{checkpoint_id.hex}")
    for session in run_unit_of_work(world.stack.app.state.sessionmaker):
        session.delete(require(session.get(TrainingCheckpoint, checkpoint_id), "checkpoint"))
    with pytest.raises(AdapterRefused, match="no adapter version"):
        resolver.resolve(f"lpx-{checkpoint_id.hex}")
