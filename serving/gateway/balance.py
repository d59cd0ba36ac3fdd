"""Which engine serves a request: pure functions of engine names, loads and a version's rate.

Affinity (the default): rendezvous (highest random weight) hashing ranks the healthy engines
for each adapter version's engine name; the version is served by the least loaded of the first
R, where R grows with the version's recent request rate (`replica_rps` requests a second per
replica, at most `max_replicas`). The ranking depends only on the names, so every gateway ranks
alike, a version's set only grows by the next engine in its own ranking, and an engine that
leaves moves only the versions it held. When even the least loaded of the R holds more than
`spill_queue` requests (waiting + running), the request spills to the least loaded healthy
engine overall. "random" and "least-loaded" ignore adapters (the bench's baselines).

Weights are blake2b digests, not Python's `hash()` (salted per process): gateways must agree.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Literal

Mode = Literal["affinity", "random", "least-loaded"]
Kind = Literal["affinity", "spill", "random", "least_loaded", "retry"]
MODES: tuple[Mode, ...] = ("affinity", "random", "least-loaded")


@dataclass(frozen=True)
class Candidate:
    name: str  # host:port, the engine's identity in the ranking
    load: int  # requests waiting + running on it, as best known


@dataclass(frozen=True)
class Policy:
    mode: Mode = "affinity"
    spill_queue: int = 32
    replica_rps: float = 20.0
    max_replicas: int = 3


@dataclass(frozen=True)
class Decision:
    engine: str
    kind: Kind


def weight(engine: str, key: str) -> int:
    digest = hashlib.blake2b(f"{engine}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rank(key: str, engines: Collection[str]) -> list[str]:
    """`engines` by descending rendezvous weight for `key` (ties, 2^-64 likely, by name)."""
    return sorted(engines, key=lambda e: (-weight(e, key), e))


def replicas(rate: float, policy: Policy, engines: int) -> int:
    """Engines a version is spread over: one per `replica_rps` of its recent rate, at least
    one, at most `max_replicas` and the engines there are."""
    wanted = max(1, math.ceil(rate / policy.replica_rps))
    return max(1, min(wanted, policy.max_replicas, engines))


def choose(
    key: str,
    candidates: Sequence[Candidate],
    policy: Policy,
    *,
    rate: float = 0.0,
    rng: random.Random | None = None,
) -> Decision | None:
    """The engine for one request for `key` among `candidates` (the healthy engines); None
    when there is none."""
    if not candidates:
        return None
    if policy.mode == "random":
        return Decision((rng or random).choice(candidates).name, "random")
    ranked = rank(key, [c.name for c in candidates])  # also breaks ties between loads
    least = _least(candidates, ranked)
    if policy.mode == "least-loaded":
        return Decision(least.name, "least_loaded")
    top = ranked[: replicas(rate, policy, len(ranked))]
    best = _least(candidates, top)
    if best.load > policy.spill_queue and least.load < best.load:
        return Decision(least.name, "spill")
    return Decision(best.name, "affinity")


def _least(candidates: Sequence[Candidate], order: Sequence[str]) -> Candidate:
    """The least loaded of the names in `order`; ties go to the earlier name."""
    by_name = {c.name: c for c in candidates}
    return min((by_name[n] for n in order), key=lambda c: c.load)


class RateMeter:
    """Requests per second per key, exponentially decayed over `window` seconds (a burst
    counts for about that long). At most `max_keys` keys: the least recently hit go first."""

    def __init__(
        self,
        window: float = 10.0,
        *,
        max_keys: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._state: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key: (mass, at)

    def _decayed(self, key: str, now: float) -> float:
        mass, at = self._state.get(key, (0.0, now))
        return mass * math.exp(-(now - at) / self.window)

    def hit(self, key: str) -> float:
        """Count one request for `key`; its rate, this request included."""
        now = self.clock()
        mass = self._decayed(key, now) + 1.0
        self._state[key] = (mass, now)
        self._state.move_to_end(key)
        while len(self._state) > self.max_keys:
            self._state.popitem(last=False)
        return mass / self.window

    def rate(self, key: str) -> float:
        return self._decayed(key, self.clock()) / self.window
