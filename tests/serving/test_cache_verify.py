"""The adapter cache trusts no folder it has not hashed: adopted folders are checked against the
manifest's sha256 before their first use, and a hit whose files changed on disk since they were
verified (size, mtime, ctime or inode) is hashed again and re-fetched when it no longer matches.
Unchanged hits are not re-hashed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

import serving.cache as cache_module
from tests.serving.cache_helpers import Source, folder_files, leftovers, make_cache, version

WEIGHTS = "weights/adapter_model.safetensors"


def _tamper(folder: Path, *, keep_mtime: bool) -> None:
    """Same size, different bytes; optionally with the old mtime put back."""
    path = folder / WEIGHTS
    before = path.stat()
    data = path.read_bytes()
    path.write_bytes(bytes(8) + data[8:])
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.parametrize("keep_mtime", [False, True])
def test_a_hit_tampered_on_disk_is_refetched(tmp_path: Path, keep_mtime: bool) -> None:
    src = Source({"v1": version("a")})
    cache = make_cache(tmp_path, CollectorRegistry())
    folder, _ = src.fetch(cache, "v1")
    _tamper(folder, keep_mtime=keep_mtime)

    again, hit = src.fetch(cache, "v1")
    assert again == folder and hit is False
    assert folder_files(folder) == src.versions["v1"]
    assert src.reads[("v1", WEIGHTS)] == 2
    assert cache.keys() == ["v1"] and cache.total_bytes == 100
    assert leftovers(tmp_path) == []


def test_an_adopted_folder_tampered_between_processes_is_refetched(tmp_path: Path) -> None:
    src = Source({"v1": version("a"), "v2": version("b")})
    first = make_cache(tmp_path, CollectorRegistry())
    folder, _ = src.fetch(first, "v1")
    src.fetch(first, "v2")
    first.close()
    _tamper(folder, keep_mtime=True)

    second = make_cache(tmp_path, CollectorRegistry())
    assert sorted(second.keys()) == ["v1", "v2"]  # adopted, not yet trusted
    assert src.fetch(second, "v1")[1] is False
    assert folder_files(folder) == src.versions["v1"]
    assert src.fetch(second, "v2")[1] is True  # intact: verified, not downloaded again
    assert src.reads[("v2", WEIGHTS)] == 1


def test_unchanged_hits_are_not_rehashed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = Source({"v1": version("a")})
    first = make_cache(tmp_path, CollectorRegistry())
    src.fetch(first, "v1")
    first.close()
    hashed: list[Path] = []
    real = cache_module.digests_match

    def counting(folder: Path, files: list[cache_module.FileSpec]) -> bool:
        hashed.append(folder)
        return real(folder, files)

    monkeypatch.setattr(cache_module, "digests_match", counting)
    second = make_cache(tmp_path, CollectorRegistry())
    for _ in range(5):
        assert src.fetch(second, "v1")[1] is True
    assert hashed == [tmp_path / "v1"]  # once, on the first use after adoption
    _tamper(tmp_path / "v1", keep_mtime=False)
    assert src.fetch(second, "v1")[1] is False
    assert src.fetch(second, "v1")[1] is True
    assert len(hashed) == 2  # the changed hit; the re-fetched folder was hashed as it arrived


def test_a_revived_folder_tampered_during_its_grace_is_refetched(tmp_path: Path) -> None:
    src = Source({"a": version("a"), "b": version("b")})
    cache = make_cache(tmp_path, CollectorRegistry(), max_bytes=150, delete_grace_seconds=30)
    folder, _ = src.fetch(cache, "a")
    src.fetch(cache, "b")  # evicts a; its folder waits out the grace period
    assert cache.keys() == ["b"] and folder.exists()
    _tamper(folder, keep_mtime=True)

    assert src.fetch(cache, "a")[1] is False
    assert folder_files(folder) == src.versions["a"]
    cache.close()
