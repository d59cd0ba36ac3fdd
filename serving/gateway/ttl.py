"""The gateway's one cache: a bounded `cachetools.TLRUCache` behind a single-flight, so a hot key
costs one load per `ttl` however many requests ask for it, and memory stays at `maxsize` entries
(least recently used go first) however many distinct keys callers send. `keep_for` may shorten an
entry's life below `ttl` (a token that expires sooner) or skip storing it (returning <= 0).

No lock: the cache is not thread-safe, but every read and write below happens on the event loop's
thread, with no await inside a cache operation. Only `load` runs in a worker thread, and it does
not touch the cache. Do not share one instance across threads or event loops.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from cachetools import TLRUCache

from serving.gateway.singleflight import SingleFlight

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TTLMemo(Generic[K, V]):
    """Outcomes of `load` per key, each kept for `ttl` seconds from when it was stored."""

    def __init__(
        self,
        *,
        maxsize: int,
        ttl: float,
        timer: Callable[[], float] = time.monotonic,
        keep_for: Callable[[V], float] | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._ttl = ttl
        self._keep_for = keep_for
        self._cache: TLRUCache[K, V] = TLRUCache(maxsize, self._expires, timer)
        self._flight: SingleFlight[V] = SingleFlight()

    def _expires(self, _key: K, value: V, now: float) -> float:
        """When an entry stored `now` expires; not after `now` means it is not stored."""
        ttl = self._ttl if self._keep_for is None else min(self._ttl, self._keep_for(value))
        return now + ttl

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        try:
            return self._cache[key]
        except KeyError:
            pass
        value = await self._flight.run(key, load)
        self._cache[key] = value
        return value

    def peek(self, key: K) -> V | None:
        """The stored, unexpired value, or None; loads nothing."""
        return self._cache.get(key)

    def __len__(self) -> int:
        return len(self._cache)
