"""On-disk layout of the adapter cache (`serving/cache.py`): names, checks and folder moves.

`root/<key>/` is a complete version; `root/.tmp-<key>-<random>/` a download in progress;
`root/.evicted-<key>-<random>/` a folder moved aside to be deleted. Functions that rename
`root/<key>` expect the caller to hold the cache's index lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

KEY = re.compile(r"[A-Za-z0-9_-]+")
TMP_PREFIX = ".tmp-"
EVICTED_PREFIX = ".evicted-"


@dataclass(frozen=True)
class FileSpec:
    name: str  # relative name inside the version folder, e.g. "adapter_model.safetensors"
    sha256: str  # hex
    size: int


def validate_key(key: str) -> None:
    if not isinstance(key, str) or not KEY.fullmatch(key):
        raise ValueError(f"invalid cache key {key!r}: only [A-Za-z0-9_-] allowed")


def validate_files(files: Sequence[FileSpec]) -> None:
    seen: set[str] = set()
    for spec in files:
        name = spec.name
        parts = name.split("/")
        if (
            not name
            or name.startswith("/")
            or "\\" in name
            or "\x00" in name
            or any(part in ("", ".", "..") for part in parts)
        ):
            raise ValueError(f"invalid file name {name!r}")
        if name in seen:
            raise ValueError(f"duplicate file name {name!r}")
        if spec.size < 0:
            raise ValueError(f"negative size for {name!r}")
        seen.add(name)


def tmp_folder(root: Path, key: str) -> Path:
    return root / f"{TMP_PREFIX}{key}-{secrets.token_hex(8)}"


def folder_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


# Per file (size, mtime_ns, ctime_ns, inode): any write, truncation, replacement or utime changes
# it (ctime cannot be set back by a user), so an unchanged stamp means unchanged bytes.
Stamp = tuple[tuple[int, int, int, int], ...]


def file_stamp(folder: Path, files: Sequence[FileSpec]) -> Stamp | None:
    """The files' stamp; None when one is missing, not a regular file or of the wrong size."""
    stamp = []
    for spec in files:
        try:
            st = os.lstat(folder / spec.name)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode) or st.st_size != spec.size:
            return None
        stamp.append((st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
    return tuple(stamp)


def digests_match(folder: Path, files: Sequence[FileSpec]) -> bool:
    """Every file hashes to its expected sha256 (read in 1 MiB chunks)."""
    for spec in files:
        digest = hashlib.sha256()
        try:
            with open(folder / spec.name, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        except OSError:
            return False
        if digest.hexdigest() != spec.sha256.lower():
            log.warning("resolver.cache.tampered", folder=str(folder), file=spec.name)
            return False
    return True


def rmtree(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("resolver.cache.delete_failed", path=str(path), error=str(exc))


def move_aside(root: Path, key: str) -> Path | None:
    """Renames `root/<key>` to a fresh `.evicted-` name (None when absent); the caller deletes
    it, outside the lock."""
    aside = root / f"{EVICTED_PREFIX}{key}-{secrets.token_hex(8)}"
    try:
        os.rename(root / key, aside)
    except FileNotFoundError:
        return None
    return aside


def refresh_mtime(folder: Path) -> None:
    # Recency survives a restart through the folder mtime (best effort).
    with contextlib.suppress(OSError):
        os.utime(folder)


def scan(root: Path) -> tuple[list[tuple[str, int]], int]:
    """Removes leftover `.tmp-*` / `.evicted-*` entries; returns the complete `<key>` folders
    as (key, bytes), oldest mtime first, and how many leftovers were removed."""
    found: list[tuple[float, str, int]] = []
    removed = 0
    for entry in os.scandir(root):
        if entry.name.startswith((TMP_PREFIX, EVICTED_PREFIX)):
            if entry.is_dir(follow_symlinks=False):
                rmtree(Path(entry.path))
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
            removed += 1
        elif KEY.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
            mtime = entry.stat(follow_symlinks=False).st_mtime
            found.append((mtime, entry.name, folder_bytes(Path(entry.path))))
    found.sort()
    return [(key, size) for _mtime, key, size in found], removed
