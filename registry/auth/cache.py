"""Verified tokens, kept briefly so a hot client's requests skip the signature check and the
client/tenant read.

Freshness: a verified token's principal (client not revoked, tenant not disabled, scopes the
client holds *now*) is reused for at most `LORAPLEX_AUTH_CACHE_SECONDS` (default 1 s, at most 1 s;
0 turns the cache off) and never past the token's `exp`. A commit in this process that changes a
client or a tenant (revoke, disable, enable, scopes) empties the cache as it commits, so *this*
process refuses a revoked client or a disabled tenant's tokens at once; another registry process
(a second uvicorn worker, another replica) or a change made straight in the database within
`LORAPLEX_AUTH_CACHE_SECONDS`. Refused tokens are
never kept: they are checked on every request.

Bounded: at most `max_entries` tokens (least recently used go first). Thread-safe: lookups happen
on the event loop, stores after a verification and clears from commit hooks in worker threads.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from cachetools import TLRUCache
from sqlalchemy import event
from sqlalchemy.orm import Session

from registry.auth.principal import Principal
from registry.models import OAuthClient, Tenant

MAX_ENTRIES = 10_000
_CHANGED = "auth_cache_changed"


class PrincipalCache:
    def __init__(
        self,
        ttl_seconds: float,
        *,
        max_entries: int = MAX_ENTRIES,
        timer: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.ttl = ttl_seconds
        self._wall = wall
        self._lock = threading.Lock()
        self._epoch = 0
        self._entries: TLRUCache[str, tuple[Principal, float]] = TLRUCache(
            max_entries, self._expires, timer
        )
        _CACHES.add(self)

    def _expires(self, _token: str, value: tuple[Principal, float], now: float) -> float:
        """Stored at monotonic `now`: gone after the TTL or at the token's `exp`."""
        return now + min(self.ttl, value[1] - self._wall())

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def epoch(self) -> int:
        """Take before reading the rows a principal is built from; hand back to `put`."""
        return self._epoch

    def get(self, token: str) -> Principal | None:
        if not self.enabled:
            return None
        with self._lock:
            found = self._entries.get(token)
        return found[0] if found is not None else None

    def put(self, token: str, principal: Principal, expires_at: float, epoch: int) -> None:
        """Keep `principal` for `token` (valid until `expires_at`, seconds since the epoch)
        unless the cache was cleared since `epoch`: those rows may be stale already."""
        if not self.enabled:
            return
        with self._lock:
            if epoch == self._epoch:
                self._entries[token] = (principal, expires_at)

    def clear(self) -> None:
        with self._lock:
            self._epoch += 1
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


# Every cache of this process; a commit that changes a client or a tenant, through any session
# (the app's, a test's, the CLI's), clears them all: clearing too often only costs a verification.
_CACHES: weakref.WeakSet[PrincipalCache] = weakref.WeakSet()


@event.listens_for(Session, "after_flush")
def _note_auth_change(session: Session, _ctx: Any) -> None:
    touched = (*session.new, *session.dirty, *session.deleted)
    if any(isinstance(obj, (OAuthClient, Tenant)) for obj in touched):
        session.info[_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _clear_on_commit(session: Session) -> None:
    # A flag left by a rolled-back change clears the caches at the session's next commit: once
    # too often, never too late.
    if session.info.pop(_CHANGED, False):
        clear_all()


def clear_all() -> None:
    """Empty every cache of this process: the next request of each token verifies again."""
    for cache in list(_CACHES):
        cache.clear()
