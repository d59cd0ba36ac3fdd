"""Local disk cache of adapter versions, for the vLLM LoRA resolver.

Contract:

* Layout: one folder per version, `root/<key>/`, holding the version's files under their relative
  names. A folder under its final name is complete: it is written as `root/.tmp-<key>-<random>/`
  and `os.rename`d into place, and it is moved aside to `root/.evicted-<key>-<random>/` before it
  is deleted, so a crash never leaves a partial `root/<key>/`.
* `get(key, files, read)` returns `(folder, hit)`. A hit is an indexed entry whose files match
  the spec's sha256. Each folder is hashed once: when fetched (as the bytes arrive) or, for one
  adopted at start-up or revived, on its first use; the files' stamp (size, mtime, ctime, inode)
  is kept, and a later hit with another stamp is hashed again. A broken entry is dropped and
  fetched again.
  A miss streams each file from `read(name)` into the temporary folder, checks its sha256 and size
  against the spec (`DigestMismatch`, nothing left on disk) and admits it. A version larger than
  the whole bound raises `CacheTooSmall` before anything is read.
* The total size of the indexed entries is kept at or below `max_bytes` by evicting the least
  recently used other entries after each admission. Eviction removes the entry from the index,
  calls `on_evict(key)` (its exceptions are logged) and deletes the folder `delete_grace_seconds`
  later, leaving it in place meanwhile: the engine may still be opening its files for requests in
  flight. A `get` of that key before the deletion runs cancels it and takes the folder back.
  While deletions are pending the disk may hold more than `max_bytes`.
* Thread-safe: one download per key at a time (a concurrent caller for the same key waits and gets
  a hit); different keys download in parallel, outside the index lock.
* Start-up removes leftover `.tmp-*` / `.evicted-*` folders, adopts complete `<key>` folders
  (recency by folder mtime, oldest first; hits refresh the mtime) and evicts down to the bound.
  So one process owns a root: a second cache on it would delete the first one's downloads.

Modules: this one (lookups, per-key locks), `cache_layout` (names, checks, folder moves),
`cache_fetch` (miss: download + verify), `cache_eviction` (LRU index, eviction, delayed
deletion), `cache_metrics`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from serving.cache_eviction import LruLedger
from serving.cache_fetch import DigestMismatch, fetch_version
from serving.cache_layout import (
    FileSpec,
    Stamp,
    digests_match,
    file_stamp,
    folder_bytes,
    move_aside,
    refresh_mtime,
    rmtree,
    scan,
    validate_files,
    validate_key,
)
from serving.cache_metrics import CacheMetrics

__all__ = ["AdapterCache", "CacheMetrics", "CacheTooSmall", "DigestMismatch", "FileSpec"]

log = structlog.get_logger(__name__)


class CacheTooSmall(Exception):
    """One version is larger than the whole cache bound."""


@dataclass
class _KeyLock:
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0


class AdapterCache:
    def __init__(
        self,
        root: Path,
        max_bytes: int,
        *,
        on_evict: Callable[[str], None] | None = None,
        delete_grace_seconds: float = 30.0,
        metrics: CacheMetrics | None = None,
    ) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        if delete_grace_seconds < 0:
            raise ValueError("delete_grace_seconds must be >= 0")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._metrics = metrics if metrics is not None else CacheMetrics.create()
        self._lock = threading.Lock()
        self._ledger = LruLedger(
            self.root,
            max_bytes,
            self._lock,
            on_evict=on_evict,
            grace=delete_grace_seconds,
            metrics=self._metrics,
        )
        self._key_locks: dict[str, _KeyLock] = {}
        self._verified: dict[str, Stamp] = {}  # key -> stamp of the files when last hashed
        self.root.mkdir(parents=True, exist_ok=True)
        self._scan()

    # -- public -------------------------------------------------------------------------------

    def get(
        self, key: str, files: Sequence[FileSpec], read: Callable[[str], Iterable[bytes]]
    ) -> tuple[Path, bool]:
        validate_key(key)
        validate_files(files)
        wanted = sum(spec.size for spec in files)
        if wanted > self.max_bytes:
            raise CacheTooSmall(
                f"version {key} needs {wanted} bytes, the cache holds at most {self.max_bytes}"
            )
        folder = self.root / key
        with self._key_lock(key):
            if self._take_hit(key, files):
                self._metrics.hits.inc()
                log.debug("resolver.cache.hit", key=key)
                refresh_mtime(folder)
                return folder, True
            if self._revive(key, files):
                self._metrics.hits.inc()
                refresh_mtime(folder)
                return folder, True
            self._metrics.misses.inc()
            log.info("resolver.cache.miss", key=key, bytes=wanted)
            start = time.perf_counter()
            size = fetch_version(
                self.root, key, files, read, clear_stale=lambda: self._discard(key)
            )
            seconds = time.perf_counter() - start
            self._metrics.fetch_seconds.observe(seconds)
            log.info("resolver.cache.fetched", key=key, bytes=size, seconds=round(seconds, 3))
            stamp = file_stamp(folder, files)
            with self._lock:
                if stamp is not None:
                    self._verified[key] = stamp
            self._ledger.admit(key, size)
            return folder, False

    def touch(self, key: str) -> None:
        with self._lock:
            if key in self._ledger.index:
                self._ledger.index.move_to_end(key)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._ledger.index

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return self._ledger.total

    def keys(self) -> list[str]:
        """Cached keys, least recently used first."""
        with self._lock:
            return list(self._ledger.index)

    def close(self) -> None:
        """Cancels the pending delayed deletions and runs them now."""
        self._ledger.close()

    # -- lookups ------------------------------------------------------------------------------

    def _verify(self, key: str, files: Sequence[FileSpec]) -> bool:
        """True when `root/<key>` matches `files`: by its stamp when that is the one last
        verified, else by hashing it (outside the index lock; the caller holds the key lock)."""
        folder = self.root / key
        stamp = file_stamp(folder, files)
        if stamp is None:
            return False
        with self._lock:
            if self._verified.get(key) == stamp:
                return True
        # Re-stat after hashing: a file changed meanwhile is not the one that was hashed.
        if not digests_match(folder, files) or file_stamp(folder, files) != stamp:
            return False
        with self._lock:
            self._verified[key] = stamp
        log.info("resolver.cache.verified", key=key)
        return True

    def _take_hit(self, key: str, files: Sequence[FileSpec]) -> bool:
        """True (and marked most recently used) when `key` is indexed and verified; a broken
        entry is dropped from the index and its folder deleted."""
        with self._lock:
            if key not in self._ledger.index:
                return False
        intact = self._verify(key, files)
        with self._lock:
            if key not in self._ledger.index:
                return False  # evicted meanwhile: `_revive` or a fetch takes over
            if intact:
                self._ledger.index.move_to_end(key)
                return True
            self._ledger.forget_locked(key)
            self._verified.pop(key, None)
            moved = move_aside(self.root, key)
        log.warning("resolver.cache.corrupt", key=key)
        if moved is not None:
            rmtree(moved)
        return False

    def _revive(self, key: str, files: Sequence[FileSpec]) -> bool:
        """Takes back an evicted folder whose deletion has not run yet."""
        with self._lock:
            if not self._ledger.take_back_locked(key):
                return False
        if not self._verify(key, files):
            with self._lock:
                self._verified.pop(key, None)
                moved = move_aside(self.root, key)
            log.warning("resolver.cache.corrupt", key=key)
            if moved is not None:
                rmtree(moved)
            return False
        log.info("resolver.cache.revive", key=key)
        self._ledger.admit(key, folder_bytes(self.root / key))
        return True

    def _discard(self, key: str) -> None:
        # Not indexed and not pending deletion, yet present: not ours to trust.
        with self._lock:
            self._verified.pop(key, None)
            moved = move_aside(self.root, key)
        if moved is not None:
            rmtree(moved)

    @contextlib.contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        with self._lock:
            slot = self._key_locks.setdefault(key, _KeyLock())
            slot.users += 1
        try:
            with slot.lock:
                yield
        finally:
            with self._lock:
                slot.users -= 1
                if slot.users == 0:
                    del self._key_locks[key]

    # -- start-up -----------------------------------------------------------------------------

    def _scan(self) -> None:
        found, removed = scan(self.root)
        log.info(
            "resolver.cache.adopt",
            root=str(self.root),
            entries=len(found),
            bytes=sum(size for _k, size in found),
            leftovers_removed=removed,
        )
        self._ledger.adopt(found)
