"""The resolver's local adapter cache (serving/cache.py): pure unit tests on tmp_path, no
services; each test builds its own CollectorRegistry for the metrics."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

import serving.cache_metrics as cache_module
from serving.cache import (
    AdapterCache,
    CacheMetrics,
    CacheTooSmall,
    DigestMismatch,
    FileSpec,
)


class Source:
    """An in-memory object store: version key -> {file name: bytes}; counts reads per file."""

    def __init__(self, versions: dict[str, dict[str, bytes]]) -> None:
        self.versions = versions
        self.reads: Tally[tuple[str, str]] = Tally()
        self.delay = 0.0
        self._lock = threading.Lock()

    def specs(self, key: str) -> list[FileSpec]:
        return [
            FileSpec(name, hashlib.sha256(data).hexdigest(), len(data))
            for name, data in self.versions[key].items()
        ]

    def reader(self, key: str) -> Callable[[str], Iterable[bytes]]:
        def read(name: str) -> Iterator[bytes]:
            with self._lock:
                self.reads[(key, name)] += 1
            if self.delay:
                time.sleep(self.delay)
            data = self.versions[key][name]
            for i in range(0, len(data), 7):
                yield data[i : i + 7]

        return read

    def fetch(self, cache: AdapterCache, key: str) -> tuple[Path, bool]:
        return cache.get(key, self.specs(key), self.reader(key))


def blob(seed: str, size: int) -> bytes:
    out = b""
    while len(out) < size:
        out += hashlib.sha256(f"{seed}{len(out)}".encode()).digest()
    return out[:size]


def version(seed: str, size: int = 100) -> dict[str, bytes]:
    """Two files, one of them in a subfolder: `size` bytes in all."""
    return {
        "adapter_config.json": blob(seed + "c", 20),
        "weights/adapter_model.safetensors": blob(seed + "w", size - 20),
    }


def value(registry: CollectorRegistry, name: str) -> float:
    got = registry.get_sample_value(name)
    return 0.0 if got is None else got


def folder_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


def make_cache(
    root: Path,
    registry: CollectorRegistry,
    max_bytes: int = 1000,
    *,
    on_evict: Callable[[str], None] | None = None,
    delete_grace_seconds: float = 30.0,
) -> AdapterCache:
    return AdapterCache(
        root,
        max_bytes,
        on_evict=on_evict,
        delete_grace_seconds=delete_grace_seconds,
        metrics=CacheMetrics.create(registry),
    )


def test_miss_then_hit(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    src = Source({"v1": version("a")})
    cache = make_cache(tmp_path, registry)

    folder, hit = src.fetch(cache, "v1")
    assert (folder, hit) == (tmp_path / "v1", False)
    assert folder_files(folder) == src.versions["v1"]
    assert "v1" in cache and cache.keys() == ["v1"] and cache.total_bytes == 100

    folder2, hit2 = src.fetch(cache, "v1")
    assert (folder2, hit2) == (folder, True)
    assert set(src.reads.values()) == {1} and len(src.reads) == 2
    assert value(registry, "loraplex_resolver_cache_hits_total") == 1
    assert value(registry, "loraplex_resolver_cache_misses_total") == 1
    assert value(registry, "loraplex_resolver_cache_bytes") == 100
    assert value(registry, "loraplex_resolver_cache_entries") == 1
    assert value(registry, "loraplex_resolver_fetch_seconds_count") == 1
    assert leftovers(tmp_path) == []


def test_digest_mismatch_leaves_nothing(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    src = Source({"v1": version("a")})
    cache = make_cache(tmp_path, registry)
    good = src.specs("v1")
    bad = [good[0], FileSpec(good[1].name, "0" * 64, good[1].size)]

    with pytest.raises(DigestMismatch) as err:
        cache.get("v1", bad, src.reader("v1"))
    message = str(err.value)
    assert good[1].name in message and good[1].sha256 in message and "0" * 64 in message
    assert list(tmp_path.iterdir()) == []
    assert "v1" not in cache and cache.total_bytes == 0
    assert value(registry, "loraplex_resolver_cache_entries") == 0

    folder, hit = src.fetch(cache, "v1")
    assert not hit and folder_files(folder) == src.versions["v1"]


def test_stream_longer_than_spec_is_cut_off(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    src = Source({"v1": version("a")})
    cache = make_cache(tmp_path, registry)
    specs = [FileSpec(s.name, s.sha256, s.size - 1) for s in src.specs("v1")]
    with pytest.raises(DigestMismatch):
        cache.get("v1", specs, src.reader("v1"))
    assert list(tmp_path.iterdir()) == [] and cache.total_bytes == 0


def test_lru_bound_touch_and_on_evict(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    src = Source({k: version(k) for k in ("a", "b", "c", "d")})
    evicted: list[str] = []
    cache = make_cache(
        tmp_path, registry, max_bytes=300, on_evict=evicted.append, delete_grace_seconds=0
    )
    for key in ("a", "b", "c"):
        src.fetch(cache, key)
    assert cache.keys() == ["a", "b", "c"] and cache.total_bytes == 300

    cache.touch("a")  # now b is the least recently used
    cache.touch("missing")  # no-op
    assert cache.keys() == ["b", "c", "a"]
    src.fetch(cache, "d")

    assert evicted == ["b"]
    assert cache.keys() == ["c", "a", "d"] and cache.total_bytes == 300
    assert not (tmp_path / "b").exists() and leftovers(tmp_path) == []
    assert value(registry, "loraplex_resolver_cache_evictions_total") == 1
    assert value(registry, "loraplex_resolver_cache_entries") == 3
    assert value(registry, "loraplex_resolver_cache_bytes") == 300

    # A hit also counts as use: c is hit, so a goes next.
    assert src.fetch(cache, "c")[1] is True
    src.fetch(cache, "b")
    assert evicted == ["b", "a"] and cache.keys() == ["d", "c", "b"]


def test_on_evict_errors_are_swallowed(tmp_path: Path) -> None:
    registry = CollectorRegistry()

    def boom(key: str) -> None:
        raise RuntimeError(key)

    src = Source({k: version(k) for k in ("a", "b")})
    cache = make_cache(tmp_path, registry, max_bytes=100, on_evict=boom, delete_grace_seconds=0)
    src.fetch(cache, "a")
    src.fetch(cache, "b")
    assert cache.keys() == ["b"] and not (tmp_path / "a").exists()


def test_delayed_deletion(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    src = Source({k: version(k) for k in ("a", "b")})
    cache = make_cache(tmp_path, registry, max_bytes=100, delete_grace_seconds=0.2)
    src.fetch(cache, "a")
    src.fetch(cache, "b")

    assert "a" not in cache and cache.total_bytes == 100
    # Still readable under its name during the grace period (requests in flight).
    assert folder_files(tmp_path / "a") == src.versions["a"]
    # Moved aside to .evicted-a-* by the timer, then removed.
    assert wait_until(lambda: not (tmp_path / "a").exists() and leftovers(tmp_path) == [])
    assert (tmp_path / "b").is_dir()


def test_refetch_during_grace_takes_the_folder_back(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    src = Source({k: version(k) for k in ("a", "b")})
    evicted: list[str] = []
    cache = make_cache(
        tmp_path, registry, max_bytes=100, on_evict=evicted.append, delete_grace_seconds=0.2
    )
    src.fetch(cache, "a")
    src.fetch(cache, "b")  # evicts a, deletion pending
    folder, hit = src.fetch(cache, "a")  # takes a back (no download), evicts b

    assert hit and src.reads[("a", "adapter_config.json")] == 1
    assert evicted == ["a", "b"] and cache.keys() == ["a"]
    assert wait_until(lambda: not (tmp_path / "b").exists() and leftovers(tmp_path) == [])
    time.sleep(0.3)  # well past a's cancelled deletion
    assert folder_files(folder) == src.versions["a"] and cache.keys() == ["a"]


def test_close_runs_pending_deletions(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    src = Source({k: version(k) for k in ("a", "b")})
    cache = make_cache(tmp_path, registry, max_bytes=100, delete_grace_seconds=60)
    src.fetch(cache, "a")
    src.fetch(cache, "b")
    assert (tmp_path / "a").is_dir()
    cache.close()
    assert not (tmp_path / "a").exists() and leftovers(tmp_path) == []
    assert (tmp_path / "b").is_dir()


def test_cache_too_small(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    src = Source({"big": version("big", size=101)})
    cache = make_cache(tmp_path, registry, max_bytes=100)
    with pytest.raises(CacheTooSmall):
        src.fetch(cache, "big")
    assert not src.reads and list(tmp_path.iterdir()) == [] and cache.total_bytes == 0


@pytest.mark.parametrize("key", ["", "a/b", "..", ".tmp-x", "a b", "ü", "a.b"])
def test_bad_keys_rejected(tmp_path: Path, key: str) -> None:
    registry = CollectorRegistry()
    src = Source({"v1": version("a")})
    cache = make_cache(tmp_path, registry)
    with pytest.raises(ValueError):
        cache.get(key, src.specs("v1"), src.reader("v1"))
    assert not src.reads and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name", ["", "../x", "a/../../x", "/etc/passwd", "a\\b", "a//b", "./a", "a/", ".."]
)
def test_bad_file_names_rejected(tmp_path: Path, name: str) -> None:
    registry = CollectorRegistry()
    cache = make_cache(tmp_path, registry)

    def read(_name: str) -> Iterator[bytes]:
        raise AssertionError("must not be read")
        yield b""  # pragma: no cover

    with pytest.raises(ValueError):
        cache.get("v1", [FileSpec(name, hashlib.sha256(b"").hexdigest(), 0)], read)
    assert list(tmp_path.iterdir()) == []


def test_concurrent_get_same_key_downloads_once(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    src = Source({"v1": version("a")})
    src.delay = 0.05
    cache = make_cache(tmp_path, registry)
    barrier = threading.Barrier(8)
    results: list[tuple[Path, bool]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(src.fetch(cache, "v1"))
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors
    assert dict(src.reads) == {
        ("v1", "adapter_config.json"): 1,
        ("v1", "weights/adapter_model.safetensors"): 1,
    }
    assert {folder for folder, _ in results} == {tmp_path / "v1"}
    assert sorted(hit for _, hit in results) == [False] + [True] * 7
    assert value(registry, "loraplex_resolver_cache_misses_total") == 1
    assert value(registry, "loraplex_resolver_cache_hits_total") == 7
    assert cache.total_bytes == 100


def test_different_keys_download_in_parallel(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    src = Source({k: version(k) for k in ("a", "b", "c", "d")})
    src.delay = 0.3  # per file: 0.6 s per version
    cache = make_cache(tmp_path, registry)
    threads = [threading.Thread(target=src.fetch, args=(cache, k)) for k in "abcd"]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - start < 1.5  # serial would be 2.4 s
    assert sorted(cache.keys()) == ["a", "b", "c", "d"]


def test_restart_adopts_cleans_and_evicts(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    src = Source({k: version(k) for k in ("a", "b", "c")})
    cache = make_cache(tmp_path, registry, max_bytes=1000)
    for key in ("a", "b", "c"):
        src.fetch(cache, key)
    cache.close()
    # Recency on disk: b oldest, then a, then c.
    now = time.time()
    for key, age in (("b", 300), ("a", 200), ("c", 100)):
        os.utime(tmp_path / key, (now - age, now - age))
    (tmp_path / ".tmp-x-123").mkdir()
    (tmp_path / ".tmp-x-123" / "part").write_bytes(b"partial")
    (tmp_path / ".evicted-y-456").mkdir()

    again = AdapterCache(tmp_path, 1000, metrics=CacheMetrics.create(CollectorRegistry()))
    assert again.keys() == ["b", "a", "c"] and again.total_bytes == 300
    assert leftovers(tmp_path) == []
    assert src.fetch(again, "a")[1] is True
    again.close()

    evicted: list[str] = []
    smaller_registry = CollectorRegistry()
    smaller = AdapterCache(
        tmp_path,
        150,
        on_evict=evicted.append,
        delete_grace_seconds=0,
        metrics=CacheMetrics.create(smaller_registry),
    )
    # The hit on a refreshed its mtime: b and c are older.
    assert smaller.keys() == ["a"] and smaller.total_bytes == 100
    assert sorted(evicted) == ["b", "c"]
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
    assert value(smaller_registry, "loraplex_resolver_cache_evictions_total") == 2
    assert value(smaller_registry, "loraplex_resolver_cache_entries") == 1
    assert value(smaller_registry, "loraplex_resolver_cache_bytes") == 100


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_damaged_hit_is_refetched(tmp_path: Path, damage: str) -> None:
    registry = CollectorRegistry()
    src = Source({"v1": version("a")})
    cache = make_cache(tmp_path, registry)
    folder, _ = src.fetch(cache, "v1")
    weights = folder / "weights" / "adapter_model.safetensors"
    if damage == "delete":
        weights.unlink()
    else:
        weights.write_bytes(weights.read_bytes()[:10])

    folder2, hit = src.fetch(cache, "v1")
    assert folder2 == folder and hit is False
    assert folder_files(folder) == src.versions["v1"]
    assert src.reads[("v1", "weights/adapter_model.safetensors")] == 2
    assert cache.total_bytes == 100 and cache.keys() == ["v1"]
    assert value(registry, "loraplex_resolver_cache_misses_total") == 2
    assert leftovers(tmp_path) == []


def test_read_raising_leaves_no_tmp(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    src = Source({"v1": version("a")})
    cache = make_cache(tmp_path, registry)
    good = src.reader("v1")

    def read(name: str) -> Iterator[bytes]:
        if name == "adapter_config.json":  # the first file arrives whole
            yield from good(name)
            return
        yield b"x" * 5
        raise ConnectionError("store went away")

    with pytest.raises(ConnectionError):
        cache.get("v1", src.specs("v1"), read)
    assert list(tmp_path.iterdir()) == [] and "v1" not in cache and cache.total_bytes == 0
    assert src.fetch(cache, "v1")[1] is False


def test_default_registry_metrics_are_shared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None = the default registry (swapped for a fresh one here): one set per process, so several
    # caches (or resolvers) can be built without "Duplicated timeseries".
    default = CollectorRegistry()
    monkeypatch.setattr(cache_module, "REGISTRY", default)
    monkeypatch.setattr(cache_module, "_default_metrics", None)
    assert CacheMetrics.create() is CacheMetrics.create(None)
    src = Source({"v1": version("a")})
    src.fetch(AdapterCache(tmp_path / "one", 100), "v1")
    src.fetch(AdapterCache(tmp_path / "two", 100, metrics=None), "v1")
    assert value(default, "loraplex_resolver_cache_misses_total") == 2
