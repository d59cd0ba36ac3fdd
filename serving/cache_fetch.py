"""A cache miss (`serving/cache.py`): stream a version's files into a temporary folder, check
each against its sha256 and size, and rename the folder into place. Nothing partial remains."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import structlog

from serving.cache_layout import FileSpec, rmtree, tmp_folder

log = structlog.get_logger(__name__)


class DigestMismatch(Exception):
    """A downloaded file's sha256 (or size) is not the one the spec promised."""


def fetch_version(
    root: Path,
    key: str,
    files: Sequence[FileSpec],
    read: Callable[[str], Iterable[bytes]],
    *,
    clear_stale: Callable[[], None],
) -> int:
    """Downloads into `root/.tmp-<key>-<random>/` and renames it to `root/<key>/`; returns the
    bytes written. `clear_stale` removes a `root/<key>` that is present though not indexed."""
    tmp = tmp_folder(root, key)
    tmp.mkdir()
    try:
        written = 0
        for spec in files:
            written += _fetch_file(key, tmp, spec, read)
        final = root / key
        if final.exists() or final.is_symlink():
            clear_stale()
        os.rename(tmp, final)
    except BaseException:
        rmtree(tmp)
        raise
    return written


def _fetch_file(key: str, tmp: Path, spec: FileSpec, read: Callable[[str], Iterable[bytes]]) -> int:
    target = tmp / spec.name
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    chunks = read(spec.name)
    try:
        with open(target, "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > spec.size:
                    raise DigestMismatch(
                        f"{key}/{spec.name}: more than the expected {spec.size} bytes "
                        f"(expected sha256 {spec.sha256})"
                    )
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    finally:
        close = getattr(chunks, "close", None)
        if callable(close):
            close()
    got = digest.hexdigest()
    if got != spec.sha256.lower() or size != spec.size:
        log.warning(
            "resolver.cache.digest_mismatch",
            key=key,
            file=spec.name,
            got=got,
            expected=spec.sha256,
            bytes=size,
            expected_bytes=spec.size,
        )
        raise DigestMismatch(
            f"{key}/{spec.name}: got sha256 {got} ({size} bytes), "
            f"expected sha256 {spec.sha256} ({spec.size} bytes)"
        )
    return size
