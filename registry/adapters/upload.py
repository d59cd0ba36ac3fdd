"""Upload of an adapter trained elsewhere: checked against the base model, stored, ready."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import structlog
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from registry.adapters.lora_check import check_lora_adapter, parse_adapter_config
from registry.adapters.safetensors import HeaderReader, SafetensorsError, looks_like_pickle
from registry.adapters.versions import NewVersion, artifact_prefix, versions
from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.base_models.repository import BaseModelRepository
from registry.base_models.service import base_model_info, known_names
from registry.db import utcnow
from registry.errors import Conflict, Unprocessable, require
from registry.models import Adapter, AdapterVersion, Tenant
from registry.settings import Settings
from registry.storage import ObjectStore, ObjectWriter, StorageError, StoredObject
from registry.uploads import read_streaming_form

log = structlog.get_logger(__name__)

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
MANIFEST_FILE = "manifest.json"
PICKLE_HINT = (
    "pickle weights (.bin) are not accepted: they can run code when loaded. Convert with "
    "safetensors (peft: model.save_pretrained(path, safe_serialization=True))"
)


class _ConfigSink:
    def __init__(self, limit: int = 1 << 20) -> None:
        self.data, self.limit = bytearray(), limit

    def begin(self, filename: str, content_type: str) -> None:
        pass

    def feed(self, data: bytes) -> None:
        self.data += data
        if len(self.data) > self.limit:
            raise Unprocessable(f"{CONFIG_FILE} is over {self.limit:,} bytes")

    def end(self) -> None:
        pass


class _WeightsSink:
    """Streams to the version's weights key while parsing the safetensors header: the parts go
    straight there but stay invisible until commit (an abort discards them)."""

    def __init__(self, store: ObjectStore, key: str, max_header_bytes: int) -> None:
        self.store, self.key = store, key
        self.reader = HeaderReader(max_header_bytes, name=WEIGHTS_FILE)
        self.writer: ObjectWriter | None = None

    def begin(self, filename: str, content_type: str) -> None:
        if filename.endswith(".bin"):
            raise Unprocessable(PICKLE_HINT)
        self.writer = self.store.writer(self.key)

    def feed(self, data: bytes) -> None:
        if self.writer is None:
            raise RuntimeError("the weights upload was not started")
        if self.reader.total_bytes == 0 and looks_like_pickle(data[:8]):
            raise Unprocessable(PICKLE_HINT)
        try:
            self.reader.feed(data)
        except SafetensorsError as exc:
            raise Unprocessable(str(exc)) from exc
        self.writer.write(data)

    def end(self) -> None:
        pass


class _Refuse:
    def __init__(self, reason: str) -> None:
        self.reason = reason

    def begin(self, filename: str, content_type: str) -> None:
        raise Unprocessable(self.reason)

    def feed(self, data: bytes) -> None:  # pragma: no cover - begin raises first
        raise Unprocessable(self.reason)

    def end(self) -> None:  # pragma: no cover
        pass


async def upload_version(
    session: Session,
    *,
    actor: Principal,
    tenant: Tenant,
    adapter: Adapter,
    content_type: str | None,
    body: AsyncIterator[bytes],
    store: ObjectStore,
    settings: Settings,
) -> AdapterVersion:
    if adapter.archived_at is not None:
        raise Conflict(f"adapter '{adapter.name}' is archived")
    config_sink = _ConfigSink()
    # The version's id, so its key, is chosen now: the weights stream to their final key.
    version_id = uuid.uuid4()
    prefix = artifact_prefix(tenant.id, adapter.id, version_id)
    weights = _WeightsSink(store, f"{prefix}/{WEIGHTS_FILE}", settings.adapter_max_header_bytes)
    try:
        await read_streaming_form(
            content_type,
            body,
            sinks={
                CONFIG_FILE: lambda: config_sink,
                WEIGHTS_FILE: lambda: weights,
                "adapter_model.bin": lambda: _Refuse(PICKLE_HINT),
            },
            max_body_bytes=settings.max_upload_bytes,
        )
        if not config_sink.data or weights.writer is None:
            raise Unprocessable(f"send both files: '{CONFIG_FILE}' and '{WEIGHTS_FILE}'")
        return await run_in_threadpool(
            _check_and_register,
            session,
            actor,
            tenant,
            adapter,
            config_sink,
            weights,
            settings,
            version_id,
        )
    except BaseException:
        if weights.writer is not None:
            await run_in_threadpool(weights.writer.abort)
        raise


def _check_and_register(
    session: Session,
    actor: Principal,
    tenant: Tenant,
    adapter: Adapter,
    config_sink: _ConfigSink,
    weights: _WeightsSink,
    settings: Settings,
    version_id: uuid.UUID,
) -> AdapterVersion:
    try:
        config = parse_adapter_config(bytes(config_sink.data))
    except ValueError as exc:
        raise Unprocessable(str(exc)) from exc
    try:
        header = weights.reader.finish()
    except SafetensorsError as exc:
        raise Unprocessable(str(exc)) from exc
    base = require(BaseModelRepository(session).get(adapter.base_model_id), "base model")
    problems = check_lora_adapter(
        config,
        header,
        base_model_info(base),
        base_model_names=known_names(base),
        base_name=base.name,
        max_rank=base.max_lora_rank,
    )
    if problems:
        reasons = [p.reason for p in problems]
        raise Unprocessable(
            f"the adapter does not fit base model '{base.name}': {reasons[0]}", problems=reasons
        )
    training_config = {k: config[k] for k in sorted(config) if not k.startswith("_")}
    version = versions.allocate(
        session,
        adapter=adapter,
        new=NewVersion(
            status="ready",
            trigger="upload",
            created_by=actor.subject,
            training_config=training_config,
            parent=versions.default_parent(session, adapter=adapter),
            version_id=version_id,
        ),
    )
    prefix = artifact_prefix(tenant.id, adapter.id, version.id)
    if weights.writer is None:
        raise RuntimeError("no weights were received")
    store = weights.store
    keys = [f"{prefix}/{name}" for name in (WEIGHTS_FILE, CONFIG_FILE, MANIFEST_FILE)]
    try:
        stored = [
            store.put_bytes(keys[1], bytes(config_sink.data)),
            weights.writer.commit(keys[0]),
        ]
        manifest = build_manifest(adapter, version, base.name, stored, prefix)
        body = json.dumps(manifest, sort_keys=True, indent=1).encode()
        store.put_bytes(keys[2], body)  # last: the artifact is complete
        _finish(session, actor, tenant, adapter, version, manifest, body, stored, prefix)
    except BaseException:
        _withdraw(store, keys)  # the version is rolled back: its files must not stay
        raise
    return version


def _withdraw(store: ObjectStore, keys: list[str]) -> None:
    for key in keys:
        try:
            store.delete(key)
        except StorageError:
            log.warning("adapter.upload_cleanup_failed", key=key, exc_info=True)


def _finish(
    session: Session,
    actor: Principal,
    tenant: Tenant,
    adapter: Adapter,
    version: AdapterVersion,
    manifest: dict[str, Any],
    body: bytes,
    stored: list[StoredObject],
    prefix: str,
) -> None:
    version.artifact_prefix = prefix
    version.manifest = manifest
    version.manifest_digest = hashlib.sha256(body).hexdigest()
    version.size_bytes = sum(s.size for s in stored)
    version.ready_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="version.upload",
        target_type="adapter_version",
        target_id=f"{adapter.name}@v{version.version}",
        tenant_id=tenant.id,
        details={"manifest_digest": version.manifest_digest, "size_bytes": version.size_bytes},
    )


def build_manifest(
    adapter: Adapter,
    version: AdapterVersion,
    base_name: str,
    files: list[StoredObject],
    prefix: str,
) -> dict[str, Any]:
    return {
        "schema": "loraplex.adapter-manifest/v1",
        "adapter": adapter.name,
        "version": version.version,
        "version_id": str(version.id),
        "base_model": {"name": base_name, "digest": version.base_model_digest},
        "config_hash": version.config_hash,
        "files": {
            f.key.removeprefix(prefix + "/"): {"sha256": f.sha256, "size": f.size} for f in files
        },
    }
