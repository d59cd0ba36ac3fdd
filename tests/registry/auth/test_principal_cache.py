"""The verified-token cache alone: bounded, TTL, never past `exp`, and clears that win."""

from __future__ import annotations

import uuid

import pytest

from registry.auth.cache import MAX_ENTRIES, PrincipalCache
from registry.auth.principal import Principal
from registry.auth.scopes import Role
from registry.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _principal(n: int = 0) -> Principal:
    return Principal(f"lpx_{n}", Role.TENANT, frozenset({"datasets:read"}), uuid.uuid4())


def _cache(ttl: float = 1.0, max_entries: int = MAX_ENTRIES) -> tuple[PrincipalCache, Clock]:
    clock = Clock()  # monotonic and wall clock move together here
    return PrincipalCache(ttl, max_entries=max_entries, timer=clock, wall=clock), clock


def test_entries_are_bounded_least_recently_used_first() -> None:
    cache, clock = _cache(max_entries=3)
    for n in range(5):
        cache.put(f"t{n}", _principal(n), clock.now + 3600, cache.epoch())
    assert len(cache) == 3
    assert cache.get("t0") is None and cache.get("t1") is None
    assert cache.get("t4") is not None
    cache.get("t2")  # used: t3 is now the least recently used
    cache.put("t5", _principal(5), clock.now + 3600, cache.epoch())
    assert cache.get("t3") is None and cache.get("t2") is not None and len(cache) == 3


def test_the_default_bound_holds_under_many_tokens() -> None:
    cache, clock = _cache()
    for n in range(MAX_ENTRIES + 500):
        cache.put(f"t{n}", _principal(), clock.now + 3600, cache.epoch())
    assert len(cache) == MAX_ENTRIES


def test_an_entry_lives_for_the_ttl_only() -> None:
    cache, clock = _cache(ttl=1.0)
    principal = _principal()
    cache.put("t", principal, clock.now + 3600, cache.epoch())
    clock.now += 0.99
    assert cache.get("t") is principal
    clock.now += 0.02
    assert cache.get("t") is None


def test_an_entry_never_outlives_the_token() -> None:
    cache, clock = _cache(ttl=1.0)
    cache.put("t", _principal(), clock.now + 0.25, cache.epoch())  # exp in 0.25 s
    clock.now += 0.24
    assert cache.get("t") is not None
    clock.now += 0.02
    assert cache.get("t") is None
    cache.put("old", _principal(), clock.now - 1, cache.epoch())  # past exp (leeway): not kept
    assert cache.get("old") is None and len(cache) == 0


def test_zero_seconds_turns_the_cache_off() -> None:
    cache, clock = _cache(ttl=0)
    cache.put("t", _principal(), clock.now + 3600, cache.epoch())
    assert cache.get("t") is None and len(cache) == 0


def test_a_verification_that_straddles_a_clear_is_not_kept() -> None:
    """Rows read before a revoke committed must not be cached after the clear."""
    cache, clock = _cache()
    epoch = cache.epoch()  # the verification starts reading
    cache.clear()  # a revoke commits meanwhile
    cache.put("t", _principal(), clock.now + 3600, epoch)
    assert cache.get("t") is None
    cache.put("t", _principal(), clock.now + 3600, cache.epoch())  # a fresh one is kept
    assert cache.get("t") is not None


def test_the_setting_cannot_promise_less_than_one_second() -> None:
    assert Settings().auth_cache_seconds == 1.0
    with pytest.raises(ValueError):
        Settings(auth_cache_seconds=1.5)
