"""Verified local copies of stored files, and of base models in particular.

A copy is downloaded into a temporary sibling folder, checked file by file against the
registry's sha256 digests, and renamed into place: a folder that exists is complete. Shared by
workers (training) and serving (the engine's model folder); no torch here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import structlog

from registry.models import BaseModel
from registry.settings import Settings
from registry.storage import ObjectStore, open_store

log = structlog.get_logger(__name__)


class DigestMismatch(Exception):
    """A stored file does not match the digest the registry recorded for it."""


def download(store: ObjectStore, key: str, dest: Path) -> str:
    """Streams `key` to `dest`; returns its sha256 (hex)."""
    digest = hashlib.sha256()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as f:
        for chunk in store.iter_chunks(key):
            digest.update(chunk)
            f.write(chunk)
    return digest.hexdigest()


def publish(tmp: Path, dest: Path) -> Path:
    """Renames a complete temporary folder to `dest`; a `dest` that appeared meanwhile wins."""
    try:
        os.rename(tmp, dest)
    except OSError:  # another process on this machine finished first: theirs is as good
        shutil.rmtree(tmp, ignore_errors=True)
        if not dest.is_dir():
            raise
    return dest


def base_model_path(base: BaseModel, settings: Settings) -> Path:
    """A folder with the base model's files: its own folder when local, else a verified copy."""
    if not base.uri.startswith("s3://"):
        return Path(base.uri.removeprefix("file://"))
    dest = settings.resolved_cache_dir / "base-models" / base.digest
    if dest.is_dir():
        return dest
    parsed = urlparse(base.uri)
    store = open_store(
        f"s3://{parsed.netloc}",
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
        s3_access_key_id=settings.s3_access_key_id,
        s3_secret_access_key=settings.s3_secret_access_key,
    )
    prefix = parsed.path.strip("/")
    prefix = prefix + "/" if prefix else ""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{base.digest[:12]}-", dir=dest.parent))
    try:
        for key in store.list_keys(prefix):
            name = key[len(prefix) :]
            got = download(store, key, tmp / name)
            want = base.files.get(name)
            if want is not None and got != want:
                raise DigestMismatch(f"base model file {name}: sha256 {got}, registered {want}")
        log.info("cache.base_model", name=base.name, digest=base.digest, path=str(dest))
        return publish(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
