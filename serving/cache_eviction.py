"""LRU accounting and eviction of the adapter cache (`serving/cache.py`).

The ledger holds the index (key -> bytes, least recently used first) and its byte total, evicts
down to `max_bytes` after each admission, and deletes evicted folders `grace` seconds later (the
engine may still be opening their files). It shares the cache's lock: methods named `*_locked`
expect it held, the others take it. `on_evict` runs outside the lock (it may call back in).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from serving.cache_layout import move_aside, rmtree
from serving.cache_metrics import CacheMetrics

log = structlog.get_logger(__name__)

# (key, bytes, folder already moved aside for immediate deletion, or None when delayed)
Victim = tuple[str, int, Path | None]


@dataclass(eq=False)
class _PendingDeletion:
    timer: threading.Timer | None = None


class LruLedger:
    def __init__(
        self,
        root: Path,
        max_bytes: int,
        lock: threading.Lock,
        *,
        on_evict: Callable[[str], None] | None,
        grace: float,
        metrics: CacheMetrics,
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.lock = lock
        self.index: OrderedDict[str, int] = OrderedDict()  # key -> bytes, LRU first
        self.total = 0
        self._on_evict = on_evict
        self._grace = grace
        self._metrics = metrics
        self._pending: dict[str, _PendingDeletion] = {}

    def admit(self, key: str, size: int) -> None:
        """Indexes `key` as most recently used and evicts other entries until the total fits."""
        with self.lock:
            self.index[key] = size
            self.index.move_to_end(key)
            self.total += size
            victims = self._pick_victims_locked(keep=key)
            self._update_gauges_locked()
        self._finish_evictions(victims)

    def adopt(self, found: list[tuple[str, int]]) -> None:
        """Indexes folders found at start-up, oldest first, and evicts down to the bound."""
        with self.lock:
            for key, size in found:
                self.index[key] = size
                self.total += size
            victims = self._pick_victims_locked(keep=None)
            self._update_gauges_locked()
        self._finish_evictions(victims)

    def forget_locked(self, key: str) -> None:
        """Drops an indexed entry without eviction (its folder is broken)."""
        self.total -= self.index.pop(key)
        self._update_gauges_locked()

    def take_back_locked(self, key: str) -> bool:
        """Cancels the pending deletion of an evicted `key`; False when none is pending."""
        deletion = self._pending.pop(key, None)
        if deletion is None:
            return False
        if deletion.timer is not None:
            deletion.timer.cancel()
        return True

    def close(self) -> None:
        """Cancels the pending delayed deletions and runs them now."""
        with self.lock:
            pending = list(self._pending.items())
            self._pending.clear()
            aside = []
            for key, deletion in pending:
                if deletion.timer is not None:
                    deletion.timer.cancel()
                moved = move_aside(self.root, key)
                if moved is not None:
                    aside.append(moved)
        for path in aside:
            rmtree(path)

    def _pick_victims_locked(self, keep: str | None) -> list[Victim]:
        """Pops LRU entries (never `keep`) until the total fits."""
        victims: list[Victim] = []
        while self.total > self.max_bytes and self.index:
            victim = next(iter(self.index))
            if victim == keep:
                break
            size = self.index.pop(victim)
            self.total -= size
            if self._grace > 0:
                self._pending[victim] = _PendingDeletion()
                victims.append((victim, size, None))
            else:
                victims.append((victim, size, move_aside(self.root, victim)))
        return victims

    def _finish_evictions(self, victims: list[Victim]) -> None:
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
                rmtree(moved)
            else:
                self._schedule_deletion(key)

    def _schedule_deletion(self, key: str) -> None:
        with self.lock:
            deletion = self._pending.get(key)
            if deletion is None or deletion.timer is not None:
                return  # already revived or run by close()
            timer = threading.Timer(self._grace, self._run_deletion, args=(key, deletion))
            timer.daemon = True
            deletion.timer = timer
            timer.start()

    def _run_deletion(self, key: str, deletion: _PendingDeletion) -> None:
        with self.lock:
            if self._pending.get(key) is not deletion:
                return  # revived or already run by close()
            del self._pending[key]
            moved = move_aside(self.root, key)
        if moved is not None:
            rmtree(moved)
            log.debug("resolver.cache.deleted", key=key)

    def _update_gauges_locked(self) -> None:
        self._metrics.bytes.set(self.total)
        self._metrics.entries.set(len(self.index))
