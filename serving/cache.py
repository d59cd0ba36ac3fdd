"""Local disk cache of adapter versions, for the vLLM LoRA resolver.

Contract:

* Layout: one folder per version, `root/<key>/`, holding the version's files under their relative
  names. A folder under its final name is complete: it is written as `root/.tmp-<key>-<random>/`
  and `os.rename`d into place, and it is moved aside to `root/.evicted-<key>-<random>/` before it
  is deleted, so a crash never leaves a partial `root/<key>/`.
* `get(key, files, read)` returns `(folder, hit)`. A hit is an indexed entry whose files all exist
  with their expected sizes (checked on every hit; a broken entry is dropped and fetched again).
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
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from serving.cache_metrics import CacheMetrics

log = structlog.get_logger(__name__)

_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TMP_PREFIX = ".tmp-"
_EVICTED_PREFIX = ".evicted-"


class DigestMismatch(Exception):
    """A downloaded file's sha256 (or size) is not the one the spec promised."""


class CacheTooSmall(Exception):
    """One version is larger than the whole cache bound."""


@dataclass(frozen=True)
class FileSpec:
    name: str  # relative name inside the version folder, e.g. "adapter_model.safetensors"
    sha256: str  # hex
    size: int


@dataclass
class _KeyLock:
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0


@dataclass(eq=False)
class _PendingDeletion:
    timer: threading.Timer | None = None


def _validate_key(key: str) -> None:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError(f"invalid cache key {key!r}: only [A-Za-z0-9_-] allowed")


def _validate_files(files: Sequence[FileSpec]) -> None:
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


def _folder_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _rmtree(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("resolver.cache.delete_failed", path=str(path), error=str(exc))


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
        self._on_evict = on_evict
        self._grace = delete_grace_seconds
        self._metrics = metrics if metrics is not None else CacheMetrics.create()
        self._lock = threading.Lock()
        self._index: OrderedDict[str, int] = OrderedDict()  # key -> bytes, LRU first
        self._total = 0
        self._key_locks: dict[str, _KeyLock] = {}
        self._pending: dict[str, _PendingDeletion] = {}
        self.root.mkdir(parents=True, exist_ok=True)
        self._scan()

    # -- public -------------------------------------------------------------------------------

    def get(
        self, key: str, files: Sequence[FileSpec], read: Callable[[str], Iterable[bytes]]
    ) -> tuple[Path, bool]:
        _validate_key(key)
        _validate_files(files)
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
                self._refresh_mtime(folder)
                return folder, True
            if self._revive(key, files):
                self._metrics.hits.inc()
                self._refresh_mtime(folder)
                return folder, True
            self._metrics.misses.inc()
            log.info("resolver.cache.miss", key=key, bytes=wanted)
            start = time.perf_counter()
            size = self._fetch(key, files, read)
            seconds = time.perf_counter() - start
            self._metrics.fetch_seconds.observe(seconds)
            log.info("resolver.cache.fetched", key=key, bytes=size, seconds=round(seconds, 3))
            self._admit(key, size)
            return folder, False

    def touch(self, key: str) -> None:
        with self._lock:
            if key in self._index:
                self._index.move_to_end(key)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._index

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return self._total

    def keys(self) -> list[str]:
        """Cached keys, least recently used first."""
        with self._lock:
            return list(self._index)

    def close(self) -> None:
        """Cancels the pending delayed deletions and runs them now."""
        with self._lock:
            pending = list(self._pending.items())
            self._pending.clear()
            aside = []
            for key, deletion in pending:
                if deletion.timer is not None:
                    deletion.timer.cancel()
                moved = self._move_aside_locked(key)
                if moved is not None:
                    aside.append(moved)
        for path in aside:
            _rmtree(path)

    # -- hits ---------------------------------------------------------------------------------

    def _files_intact(self, key: str, files: Sequence[FileSpec]) -> bool:
        folder = self.root / key
        for spec in files:
            try:
                st = (folder / spec.name).stat()
            except OSError:
                return False
            if not stat.S_ISREG(st.st_mode) or st.st_size != spec.size:
                return False
        return True

    def _take_hit(self, key: str, files: Sequence[FileSpec]) -> bool:
        """True (and marked most recently used) when `key` is indexed and intact; a broken entry
        is dropped from the index and its folder deleted."""
        with self._lock:
            if key not in self._index:
                return False
            if self._files_intact(key, files):
                self._index.move_to_end(key)
                return True
            self._total -= self._index.pop(key)
            self._update_gauges_locked()
            moved = self._move_aside_locked(key)
        log.warning("resolver.cache.corrupt", key=key)
        if moved is not None:
            _rmtree(moved)
        return False

    def _revive(self, key: str, files: Sequence[FileSpec]) -> bool:
        """Takes back an evicted folder whose deletion has not run yet."""
        with self._lock:
            deletion = self._pending.pop(key, None)
            if deletion is None:
                return False
            if deletion.timer is not None:
                deletion.timer.cancel()
            if not self._files_intact(key, files):
                moved = self._move_aside_locked(key)
                intact = False
            else:
                moved, intact = None, True
        if moved is not None:
            _rmtree(moved)
        if not intact:
            return False
        log.info("resolver.cache.revive", key=key)
        self._admit(key, _folder_bytes(self.root / key))
        return True

    def _refresh_mtime(self, folder: Path) -> None:
        # Recency survives a restart through the folder mtime (best effort).
        with contextlib.suppress(OSError):
            os.utime(folder)

    # -- misses -------------------------------------------------------------------------------

    def _fetch(
        self, key: str, files: Sequence[FileSpec], read: Callable[[str], Iterable[bytes]]
    ) -> int:
        tmp = self.root / f"{_TMP_PREFIX}{key}-{secrets.token_hex(8)}"
        tmp.mkdir()
        try:
            written = 0
            for spec in files:
                written += self._fetch_file(key, tmp, spec, read)
            final = self.root / key
            if final.exists() or final.is_symlink():
                # Not indexed and not pending deletion, yet present: not ours to trust.
                with self._lock:
                    moved = self._move_aside_locked(key)
                if moved is not None:
                    _rmtree(moved)
            os.rename(tmp, final)
        except BaseException:
            _rmtree(tmp)
            raise
        return written

    def _fetch_file(
        self, key: str, tmp: Path, spec: FileSpec, read: Callable[[str], Iterable[bytes]]
    ) -> int:
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

    # -- index and eviction -------------------------------------------------------------------

    def _admit(self, key: str, size: int) -> None:
        with self._lock:
            self._index[key] = size
            self._index.move_to_end(key)
            self._total += size
            victims = self._pick_victims_locked(keep=key)
            self._update_gauges_locked()
        self._finish_evictions(victims)

    def _pick_victims_locked(self, keep: str | None) -> list[tuple[str, int, Path | None]]:
        """Pops LRU entries (never `keep`) until the total fits; returns (key, bytes, folder
        already moved aside for immediate deletion or None when its deletion is delayed)."""
        victims: list[tuple[str, int, Path | None]] = []
        while self._total > self.max_bytes and self._index:
            victim = next(iter(self._index))
            if victim == keep:
                break
            size = self._index.pop(victim)
            self._total -= size
            if self._grace > 0:
                self._pending[victim] = _PendingDeletion()
                victims.append((victim, size, None))
            else:
                victims.append((victim, size, self._move_aside_locked(victim)))
        return victims

    def _finish_evictions(self, victims: list[tuple[str, int, Path | None]]) -> None:
        # Outside the index lock: on_evict may call back into the cache.
        for key, size, moved in victims:
            log.info("resolver.cache.evict", key=key, bytes=size)
            if self._on_evict is not None:
                try:
                    self._on_evict(key)
                except Exception:
                    log.exception("resolver.cache.on_evict_failed", key=key)
            self._metrics.evictions.inc()
            if moved is not None:
                _rmtree(moved)
            else:
                self._schedule_deletion(key)

    def _schedule_deletion(self, key: str) -> None:
        with self._lock:
            deletion = self._pending.get(key)
            if deletion is None or deletion.timer is not None:
                return  # already revived or run by close()
            timer = threading.Timer(self._grace, self._run_deletion, args=(key, deletion))
            timer.daemon = True
            deletion.timer = timer
            timer.start()

    def _run_deletion(self, key: str, deletion: _PendingDeletion) -> None:
        with self._lock:
            if self._pending.get(key) is not deletion:
                return  # revived or already run by close()
            del self._pending[key]
            moved = self._move_aside_locked(key)
        if moved is not None:
            _rmtree(moved)
            log.debug("resolver.cache.deleted", key=key)

    def _move_aside_locked(self, key: str) -> Path | None:
        aside = self.root / f"{_EVICTED_PREFIX}{key}-{secrets.token_hex(8)}"
        try:
            os.rename(self.root / key, aside)
        except FileNotFoundError:
            return None
        return aside

    def _update_gauges_locked(self) -> None:
        self._metrics.bytes.set(self._total)
        self._metrics.entries.set(len(self._index))

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
        found: list[tuple[float, str, int]] = []
        removed = 0
        for entry in os.scandir(self.root):
            if entry.name.startswith((_TMP_PREFIX, _EVICTED_PREFIX)):
                if entry.is_dir(follow_symlinks=False):
                    _rmtree(Path(entry.path))
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                removed += 1
            elif _KEY.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                mtime = entry.stat(follow_symlinks=False).st_mtime
                found.append((mtime, entry.name, _folder_bytes(Path(entry.path))))
        found.sort()
        with self._lock:
            for _mtime, key, size in found:
                self._index[key] = size
                self._total += size
            victims = self._pick_victims_locked(keep=None)
            self._update_gauges_locked()
        log.info(
            "resolver.cache.adopt",
            root=str(self.root),
            entries=len(found),
            bytes=sum(size for _m, _k, size in found),
            leftovers_removed=removed,
        )
        self._finish_evictions(victims)
