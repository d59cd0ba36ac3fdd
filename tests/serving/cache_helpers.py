"""Shared pieces of the adapter cache tests: an in-memory source, versions, metric reads."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry

from serving.cache import (
    AdapterCache,
    CacheMetrics,
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
