"""The resolver's local adapter cache (serving/cache.py): pure unit tests on tmp_path, no
services; each test builds its own CollectorRegistry for the metrics. Fetching, verifying,
bounds, eviction and deletion; concurrency and recovery are in test_cache_recovery.py."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from serving.cache import CacheTooSmall, DigestMismatch, FileSpec
from tests.serving.cache_helpers import (
    Source,
    folder_files,
    leftovers,
    make_cache,
    value,
    version,
    wait_until,
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
