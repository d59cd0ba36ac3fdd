"""vLLM LoRA resolver: an engine name it does not know -> a verified local copy of that version.

vLLM calls `resolve_lora(base, name)` once per unknown name. We look the version up in the
registry's database (the manifest there, not the one in the bucket, is the reference), fetch its
files through the byte-bounded `AdapterCache` (sha256 checked file by file before the folder is
renamed into place) and only then return a `LoRARequest`. Refusals raise `AdapterRefused`;
nothing unverified is ever handed to vLLM.

How vLLM hears "refused": returning None would make it answer 404 "model does not exist", and
any plain exception escapes its request handler as a 500 after which uvicorn closes the
keep-alive connection (the next request on it fails). So the vLLM-facing resolver raises
`vllm.exceptions.GracefulHTTPError` with status 503: vLLM's registered `VLLMError` handler turns
it into a clean `{"error": {...}}` 503 naming the reason, and the connection stays open. A
failure of a dependency (database, object store) is a 503 too, with a generic message.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import httpx
import structlog
from prometheus_client import Counter, Histogram
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from registry.db import make_engine, make_sessionmaker
from registry.models import AdapterVersion, BaseModel, TrainingCheckpoint
from registry.settings import Settings
from registry.storage import ObjectStore
from serving.cache import AdapterCache, CacheMetrics, CacheTooSmall, DigestMismatch, FileSpec
from serving.names import lora_int_id, parse_engine_name

log = structlog.get_logger(__name__)

RESOLVES = Counter("loraplex_resolver_resolves_total", "Resolver calls by outcome", ["outcome"])
LOAD_SECONDS = Histogram(
    "loraplex_resolver_load_seconds",
    "Time from an unknown engine name to a verified local folder",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


class AdapterRefused(Exception):
    """The version cannot be served (unknown, not ready, other base model, digest mismatch)."""


@dataclass(frozen=True)
class ServableVersion:
    version_id: uuid.UUID
    prefix: str
    files: list[FileSpec]


def _files(manifest: dict[str, Any]) -> list[FileSpec]:
    return [
        FileSpec(name=name, sha256=meta["sha256"], size=int(meta["size"]))
        for name, meta in sorted(manifest["files"].items())
    ]


def _checkpoint(
    session: Session, checkpoint_id: uuid.UUID, base_model_id: uuid.UUID
) -> ServableVersion | None:
    """A training checkpoint is served like a version: its own manifest, files and name."""
    c = session.scalar(select(TrainingCheckpoint).where(TrainingCheckpoint.id == checkpoint_id))
    if c is None:
        return None
    if c.base_model_id != base_model_id:
        raise AdapterRefused(f"checkpoint {checkpoint_id} is for another base model")
    if not c.manifest or not c.artifact_prefix:
        raise AdapterRefused(f"checkpoint {checkpoint_id} has no stored files")
    return ServableVersion(version_id=c.id, prefix=c.artifact_prefix, files=_files(c.manifest))


def find_servable(
    session: Session, version_id: uuid.UUID, base_model_id: uuid.UUID
) -> ServableVersion:
    """The files to serve for an engine name's id: a ready version's, or a checkpoint's."""
    v = session.scalar(select(AdapterVersion).where(AdapterVersion.id == version_id))
    if v is None:
        checkpoint = _checkpoint(session, version_id, base_model_id)
        if checkpoint is not None:
            return checkpoint
        raise AdapterRefused(f"no adapter version {version_id}")
    if v.status != "ready" or not v.manifest or not v.artifact_prefix:
        raise AdapterRefused(f"adapter version {version_id} is {v.status}, not ready")
    if v.base_model_id != base_model_id:
        raise AdapterRefused(f"adapter version {version_id} is for another base model")
    return ServableVersion(version_id=v.id, prefix=v.artifact_prefix, files=_files(v.manifest))


class RegistryResolver:
    """The resolver proper, free of vLLM types so it can be tested on its own."""

    def __init__(
        self,
        settings: Settings,
        *,
        sessions: sessionmaker[Session],
        store: ObjectStore,
        base_model: BaseModel,
        cache: AdapterCache | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.store = store
        self.base_model_id = base_model.id
        self.cache = cache or AdapterCache(
            settings.resolved_resolver_cache_dir,
            settings.resolver_cache_bytes,
            on_evict=self._unload_from_engine,
            delete_grace_seconds=settings.resolver_delete_grace_seconds,
            metrics=CacheMetrics.create(),
        )

    def resolve(self, name: str) -> tuple[str, int, bool] | None:
        """(local folder, int id, cache hit) for one of our names; None for a name not ours."""
        version_id = parse_engine_name(name)
        if version_id is None:
            RESOLVES.labels("not_ours").inc()
            return None
        started = time.perf_counter()
        try:
            with self.sessions() as session:
                found = find_servable(session, version_id, self.base_model_id)
            folder, hit = self.cache.get(
                found.version_id.hex,
                found.files,
                lambda file: self.store.iter_chunks(f"{found.prefix}/{file}"),
            )
        except DigestMismatch as exc:
            RESOLVES.labels("digest_mismatch").inc()
            log.error(
                "resolver.refused", engine_name=name, reason="digest_mismatch", error=str(exc)
            )
            raise AdapterRefused(f"refusing {name}: {exc}") from exc
        except CacheTooSmall as exc:
            RESOLVES.labels("too_large").inc()
            log.error("resolver.refused", engine_name=name, reason="too_large", error=str(exc))
            raise AdapterRefused(f"refusing {name}: {exc}") from exc
        except AdapterRefused as exc:
            RESOLVES.labels("refused").inc()
            log.warning("resolver.refused", engine_name=name, reason=str(exc))
            raise
        seconds = time.perf_counter() - started
        LOAD_SECONDS.observe(seconds)
        RESOLVES.labels("hit" if hit else "fetched").inc()
        log.info("resolver.resolved", engine_name=name, cache_hit=hit, ms=round(seconds * 1e3, 2))
        return str(folder), lora_int_id(version_id), hit

    def _unload_from_engine(self, key: str) -> None:
        """The cache evicted a folder: make vLLM forget the name, so its next use resolves again
        (vLLM would otherwise try to reload the deleted folder after its own memory eviction)."""
        name = f"lpx-{key}"
        threading.Thread(target=self._post_unload, args=(name,), daemon=True).start()

    def _post_unload(self, name: str) -> None:
        from serving.engine import engine_api_key

        headers = {"Authorization": f"Bearer {engine_api_key(self.settings)}"}
        try:
            r = httpx.post(
                f"{self.settings.resolved_engine_url}/v1/unload_lora_adapter",
                json={"lora_name": name},
                headers=headers,
                timeout=30,
            )
            log.info("resolver.unloaded", engine_name=name, status=r.status_code)
        except httpx.HTTPError as exc:
            log.warning("resolver.unload_failed", engine_name=name, error=str(exc))


def build_resolver(settings: Settings) -> RegistryResolver:
    """Everything the resolver needs, from the same `LORAPLEX_*` settings as the other services."""
    from registry.storage import open_configured_store

    if not settings.engine_base_model:
        raise RuntimeError("LORAPLEX_ENGINE_BASE_MODEL is not set: the resolver needs it")
    engine = make_engine(settings.resolved_database_url, pool_size=2, max_overflow=2)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        base = session.scalar(select(BaseModel).where(BaseModel.name == settings.engine_base_model))
        if base is None:
            raise RuntimeError(f"base model '{settings.engine_base_model}' is not registered")
        session.expunge(base)
    return RegistryResolver(
        settings, sessions=sessions, store=open_configured_store(settings), base_model=base
    )


def make_vllm_resolver(settings: Settings) -> Any:
    """The `vllm.lora.resolver.LoRAResolver` subclass, built lazily on first use."""
    from vllm.exceptions import GracefulHTTPError
    from vllm.lora.request import LoRARequest
    from vllm.lora.resolver import LoRAResolver

    class LoraplexResolver(LoRAResolver):
        def __init__(self) -> None:
            self._inner: RegistryResolver | None = None
            self._lock = threading.Lock()

        def inner(self) -> RegistryResolver:
            with self._lock:
                if self._inner is None:
                    self._inner = build_resolver(settings)
                return self._inner

        async def resolve_lora(self, base_model_name: str, lora_name: str) -> LoRARequest | None:
            try:
                found = await asyncio.to_thread(lambda: self.inner().resolve(lora_name))
            except AdapterRefused as exc:
                raise GracefulHTTPError(str(exc), HTTPStatus.SERVICE_UNAVAILABLE) from exc
            except Exception as exc:
                RESOLVES.labels("error").inc()
                log.exception("resolver.failed", engine_name=lora_name)
                message = f"{lora_name} could not be fetched ({type(exc).__name__}); retry shortly"
                raise GracefulHTTPError(message, HTTPStatus.SERVICE_UNAVAILABLE) from exc
            if found is None:
                return None
            path, int_id, _ = found
            return LoRARequest(
                lora_name=lora_name,
                lora_int_id=int_id,
                lora_path=path,
                base_model_name=base_model_name,
            )

    return LoraplexResolver()
