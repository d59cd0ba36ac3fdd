"""Per-tenant buckets shared by every gateway replica, on Redis (issue 19).

Same semantics as `ratelimit.RateLimiter` (take -> seconds to wait; give back or charge a debt
that later requests wait out), one bucket per tenant for all replicas instead of one per
process. Each operation is one atomic Lua script (a hash of tokens and the time it was
updated, read against Redis's own clock, so replicas' clocks do not matter); a bucket's key
expires once it would be full again (at most a day), so idle tenants cost nothing. One key
per script: fine on Redis Cluster. Needs Redis 5 or later (TIME inside a script).

Redis unreachable (or slower than `TIMEOUT_S`): the request is decided by this process's own
bucket, as without Redis (so N replicas allow up to N x meanwhile) rather than refused or
delayed: a rate limit is not worth an outage. Redis is not tried again for `RETRY_S`; one
warning per outage, `loraplex_gateway_ratelimit_redis_outages_total` counts outages and
`loraplex_gateway_ratelimit_fallback_total` the decisions taken per process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from registry.settings import Settings
from serving.gateway import metrics
from serving.gateway.ratelimit import Buckets, LocalBuckets, RateLimiter

log = structlog.get_logger(__name__)
TIMEOUT_S = 0.25  # connect or answer, per operation
RETRY_S = 1.0  # after a failure, decide locally this long before trying Redis again
PREFIX = "loraplex:ratelimit"

# KEYS[1]: the bucket. ARGV: mode ("take" | "give"), rate (tokens/s), burst, amount.
# Returns the seconds to wait (take) or "0" (give), as a string (Lua floats lose precision as
# integer replies).
BUCKET_LUA = """
local rate, burst, amount = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens, updated = tonumber(state[1]), tonumber(state[2])
if tokens == nil or updated == nil then
  tokens, updated = burst, now
end
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local wait = 0
if ARGV[1] == 'take' then
  local need = math.min(amount, burst)
  if tokens >= need then
    tokens = tokens - need
  else
    wait = (need - tokens) / rate
  end
else
  tokens = math.min(burst, tokens + amount)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
local ttl = math.ceil((burst - tokens) / rate * 1000) + 1000
redis.call('PEXPIRE', KEYS[1], math.min(ttl, 86400000))
return tostring(wait)
"""


class RedisLink:
    """One Redis client per event loop (an asyncio client is bound to its loop), and whether
    Redis answers."""

    def __init__(
        self, url: str, *, retry_s: float = RETRY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.url = url
        self.retry_s = retry_s
        self.clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Redis | None = None
        self._script: AsyncScript | None = None
        self._down_until: float | None = None  # None: up

    def _connected(self) -> tuple[Redis, AsyncScript]:
        loop = asyncio.get_running_loop()
        if self._client is None or self._script is None or self._loop is not loop:
            self._loop = loop
            self._client = Redis.from_url(
                self.url,
                socket_timeout=TIMEOUT_S,
                socket_connect_timeout=TIMEOUT_S,
                retry=Retry(NoBackoff(), 0),
            )
            self._script = self._client.register_script(BUCKET_LUA)
        return self._client, self._script

    async def run(
        self, key: str, mode: str, rate: float, burst: int, amount: float
    ) -> float | None:
        """The script's answer; None when Redis cannot be used now (decide locally)."""
        if self._down_until is not None and self.clock() < self._down_until:
            return None
        client, script = self._connected()
        try:
            answer = await script(keys=[key], args=[mode, rate, burst, amount], client=client)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return None
        if self._down_until is not None:
            log.info("gateway.ratelimit.redis_back", shared=True)
            self._down_until = None
        return float(answer)

    def _failed(self, exc: Exception) -> None:
        if self._down_until is None:  # once per outage
            metrics.RATELIMIT_REDIS_OUTAGES.inc()
            log.warning(
                "gateway.ratelimit.redis_unreachable",
                error=type(exc).__name__,
                detail=str(exc)[:200],
                fallback="per-process buckets until Redis answers again",
            )
        self._down_until = self.clock() + self.retry_s

    async def close(self) -> None:
        client, self._client, self._script = self._client, None, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.aclose()


class RedisBuckets:
    """`Buckets` on Redis, named `name` (e.g. requests, tokens), with this process's own
    `RateLimiter` to fall back on."""

    def __init__(self, link: RedisLink, name: str, rate: float, burst: int) -> None:
        self.link = link
        self.name = name
        self.rate = rate
        self.local = RateLimiter(rate, burst)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def burst(self) -> int:
        return self.local.burst

    def _key(self, key: str) -> str:
        return f"{PREFIX}:{self.name}:{key}"

    async def take(self, key: str, cost: float = 1.0) -> float:
        wait = await self.link.run(self._key(key), "take", self.rate, self.burst, cost)
        if wait is None:
            metrics.RATELIMIT_LOCAL_FALLBACK.labels(self.name).inc()
            return self.local.take(key, cost)
        return wait

    async def give(self, key: str, tokens: float) -> None:
        if await self.link.run(self._key(key), "give", self.rate, self.burst, tokens) is None:
            metrics.RATELIMIT_LOCAL_FALLBACK.labels(self.name).inc()
            self.local.give(key, tokens)

    def settle(self, key: str, tokens: float) -> None:
        if not tokens:
            return  # the reservation was exact: nothing to tell Redis
        try:
            task = asyncio.get_running_loop().create_task(self.give(key, tokens))
        except RuntimeError:  # no loop (shutting down): this process's bucket at least
            self.local.give(key, tokens)
            return
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.link.close()


def tenant_buckets(settings: Settings) -> tuple[Buckets, Buckets]:
    """The gateway's request bucket and token budget per tenant: on Redis when
    `gateway_redis_url` (default: a redis:// broker) is set, else per process."""
    per_minute = settings.gateway_tokens_per_minute
    rps, burst = settings.gateway_rate_limit_rps, settings.gateway_rate_limit_burst
    url = settings.resolved_gateway_redis_url
    if not url:
        return (
            LocalBuckets(RateLimiter(rps, burst)),
            LocalBuckets(RateLimiter(per_minute / 60.0, per_minute)),
        )
    link = RedisLink(url)
    return (
        RedisBuckets(link, "requests", rps, burst),
        RedisBuckets(link, "tokens", per_minute / 60.0, per_minute),
    )
