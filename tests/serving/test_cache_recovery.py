"""The adapter cache under concurrency and after damage or a restart: one download per key,
parallel keys, adoption of what a previous process left, refetch of damaged hits."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

import serving.cache_metrics as cache_module
from serving.cache import AdapterCache, CacheMetrics
from tests.serving.cache_helpers import (
    Source,
    folder_files,
    leftovers,
    make_cache,
    value,
    version,
)


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
