"""The gateway's one cache: a bounded `cachetools.TLRUCache` behind a single-flight, so a hot key
costs one load per `ttl` however many requests ask for it, and memory stays at `maxsize` entries
(least recently used go first) however many distinct keys callers send. `keep_for` may shorten an
entry's life below `ttl` (a token that expires sooner) or skip storing it (returning <= 0).

No lock: the cache is not thread-safe, but every read and write below happens on the event loop's
thread, with no await inside a cache operation. Only `load` runs in a worker thread, and it does
not touch the cache. Do not share one instance across threads or event loops.

`drop(predicate)` forgets entries at once (a pushed route change, issue 19). A load already in
flight when the drop comes may have read the old rows: its result is handed to the callers that
were waiting for it, but it is not stored for a key the drop matched, and callers arriving after
the drop do not join it (they start a load of their own). Each drop bumps an epoch; a load
remembers the epoch it started in, and the last `DROPS_KEPT` drops are kept to check it against
(a load older than those is not stored at all).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from cachetools import TLRUCache

from serving.gateway.singleflight import SingleFlight

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
DROPS_KEPT = 256


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
        self._epoch = 0
        self._drops: deque[tuple[int, Callable[[K], bool] | None]] = deque(maxlen=DROPS_KEPT)

    def _expires(self, _key: K, value: V, now: float) -> float:
        """When an entry stored `now` expires; not after `now` means it is not stored."""
        ttl = self._ttl if self._keep_for is None else min(self._ttl, self._keep_for(value))
        return now + ttl

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        try:
            return self._cache[key]
        except KeyError:
            pass
        epoch = self._epoch
        value = await self._flight.run((key, epoch), load)
        if not self._dropped_since(key, epoch):
            self._cache[key] = value
        return value

    def drop(self, predicate: Callable[[K], bool] | None = None) -> int:
        """Forget the entries whose key matches (None: all), and keep loads in flight from
        storing what they read for such keys. Returns how many entries went."""
        self._epoch += 1
        self._drops.append((self._epoch, predicate))
        if predicate is None:
            gone = len(self._cache)
            self._cache.clear()
            return gone
        keys = [k for k in list(self._cache.keys()) if predicate(k)]
        for k in keys:
            self._cache.pop(k, None)
        return len(keys)

    def _dropped_since(self, key: K, epoch: int) -> bool:
        if epoch == self._epoch:
            return False
        if not self._drops or self._drops[0][0] > epoch + 1:
            return True  # drops we no longer remember happened since: be safe
        return any(e > epoch and (p is None or p(key)) for e, p in self._drops)

    def peek(self, key: K) -> V | None:
        """The stored, unexpired value, or None; loads nothing."""
        return self._cache.get(key)

    def __len__(self) -> int:
        return len(self._cache)
