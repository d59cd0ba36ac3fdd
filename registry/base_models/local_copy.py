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

from registry.base_models.inspect import (
    ALL_FILES_KEY,
    BaseModelError,
    BaseModelSource,
    check_name,
    chunks_of,
    local_source,
    store_source,
)
from registry.models import BaseModel
from registry.settings import Settings
from registry.storage import ObjectStore, open_store

log = structlog.get_logger(__name__)


class DigestMismatch(Exception):
    """A stored file does not match the digest the registry recorded for it."""


def download(store: ObjectStore, key: str, dest: Path) -> str:
    """Streams `key` to `dest` (a path the caller has confined); returns its sha256 (hex)."""
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


def confined(root: Path, name: str) -> Path:
    """`root / name`, refused (ValueError) unless it is a plain name that stays inside `root`."""
    check_name(name)
    path = (root / name).resolve()
    if os.path.commonpath([root.resolve(), path]) != str(root.resolve()):
        raise ValueError(f"file name {name!r} leads outside {root}")
    return path


def source_for(uri: str, settings: Settings) -> BaseModelSource:
    """The files a base model `uri` names: a local folder or an S3 prefix."""
    if not uri.startswith("s3://"):
        return local_source(uri.removeprefix("file://"))
    parsed = urlparse(uri)
    store = open_store(
        f"s3://{parsed.netloc}",
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
        s3_access_key_id=settings.s3_access_key_id,
        s3_secret_access_key=settings.s3_secret_access_key,
    )
    return store_source(store, parsed.path.strip("/"))


def base_model_path(base: BaseModel, settings: Settings) -> Path:
    """A verified copy of the base model's files, in the cache under its digest.

    Local folders are copied too: checking a folder in place and then handing it to a loader
    leaves a window in which a file can change; the copy is checked as it is written, and
    only the registered files are in it. Every registered file must be present with its
    sha256; a top-level file that is not registered is refused (`DigestMismatch`), except
    for rows registered before every file was recorded, when
    `base_model_allow_unregistered_files` is set (copied unverified, with a warning).
    """
    dest = settings.resolved_cache_dir / "base-models" / "verified" / base.digest
    if dest.is_dir():
        return dest
    source = source_for(base.uri, settings)
    try:
        present = set(source.list_files())
    except BaseModelError as exc:
        raise DigestMismatch(f"base model {base.name}: {exc}") from None
    missing = sorted(base.files.keys() - present)
    if missing:
        raise DigestMismatch(
            f"base model {base.name}: registered file(s) missing: {', '.join(missing)}"
        )
    extra = sorted(present - base.files.keys())
    legacy = base.config.get(ALL_FILES_KEY) is not True
    if extra and not (legacy and settings.base_model_allow_unregistered_files):
        raise DigestMismatch(
            f"base model {base.name}: file(s) not registered with it: {', '.join(extra)}; "
            "these can change the model's behaviour: remove them, or register the folder "
            "again as a new base model"
        )
    if extra:
        log.warning("base_model.unverified_files", name=base.name, files=extra)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{base.digest[:12]}-", dir=dest.parent))
    try:
        for name in sorted(base.files.keys() | set(extra)):
            got = _copy(source, name, confined(tmp, name))
            want = base.files.get(name)
            if want is not None and got != want:
                raise DigestMismatch(
                    f"base model {base.name}: file {name} has sha256 {got}, registered {want}"
                )
        log.info("cache.base_model", name=base.name, digest=base.digest, path=str(dest))
        return publish(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _copy(source: BaseModelSource, name: str, dest: Path) -> str:
    digest = hashlib.sha256()
    with open(dest, "xb") as f, chunks_of(source, name) as chunks:
        for chunk in chunks:
            digest.update(chunk)
            f.write(chunk)
    return digest.hexdigest()
