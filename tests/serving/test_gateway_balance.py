"""balance.py: rendezvous ranking, replica counts, affinity / spill / random / least-loaded."""

from __future__ import annotations

import hashlib
import random
from collections import Counter

import pytest

from serving.gateway.balance import (
    Candidate,
    Policy,
    RateMeter,
    choose,
    rank,
    replicas,
    weight,
)

ENGINES = [f"10.0.0.{i}:8100" for i in range(1, 6)]
KEYS = [f"lpx-{i:032x}" for i in range(2000)]


def idle(names: list[str]) -> list[Candidate]:
    return [Candidate(n, 0) for n in names]


def test_weights_are_the_same_in_every_process() -> None:
    """Not Python's salted hash(): every gateway must rank engines alike."""
    expected = hashlib.blake2b(b"10.0.0.1:8100\x00lpx-1", digest_size=8).digest()
    assert weight("10.0.0.1:8100", "lpx-1") == int.from_bytes(expected, "big")
    assert rank("lpx-1", ENGINES) == rank("lpx-1", list(reversed(ENGINES)))


def test_versions_spread_evenly_over_engines() -> None:
    firsts = Counter(rank(k, ENGINES)[0] for k in KEYS)
    assert set(firsts) == set(ENGINES)
    for n in firsts.values():
        assert abs(n - len(KEYS) / len(ENGINES)) < 0.15 * len(KEYS) / len(ENGINES)


@pytest.mark.parametrize("gone", ENGINES)
def test_removing_an_engine_moves_only_its_versions(gone: str) -> None:
    rest = [e for e in ENGINES if e != gone]
    moved = 0
    for k in KEYS:
        before, after = rank(k, ENGINES), rank(k, rest)
        assert after == [e for e in before if e != gone]  # the order of the others holds
        for r in (1, 2, 3):  # a version's set of R engines changes only if it held `gone`
            if gone not in before[:r]:
                assert after[:r] == before[:r]
        moved += before[0] == gone
    assert 0 < moved < 0.3 * len(KEYS)


def test_adding_an_engine_moves_versions_only_to_it() -> None:
    new = "10.0.0.9:8100"
    for k in KEYS:
        before, after = rank(k, ENGINES)[0], rank(k, [*ENGINES, new])[0]
        assert after in (before, new)


@pytest.mark.parametrize(
    ("rate", "engines", "expected"),
    [(0.0, 5, 1), (20.0, 5, 1), (20.1, 5, 2), (59.0, 5, 3), (1000.0, 5, 3), (1000.0, 2, 2)],
)
def test_replicas_grow_with_the_rate(rate: float, engines: int, expected: int) -> None:
    assert replicas(rate, Policy(replica_rps=20.0, max_replicas=3), engines) == expected


def test_affinity_is_the_first_ranked_engine_when_idle() -> None:
    for k in KEYS[:200]:
        decision = choose(k, idle(ENGINES), Policy())
        assert decision is not None
        assert (decision.engine, decision.kind) == (rank(k, ENGINES)[0], "affinity")


def test_a_busy_version_spreads_over_exactly_its_top_replicas() -> None:
    """At 3 replicas' rate, requests held in flight go round its first 3 engines only."""
    policy = Policy(replica_rps=10.0, max_replicas=3, spill_queue=1000)
    key = KEYS[7]
    load = dict.fromkeys(ENGINES, 0)
    for _ in range(30):
        decision = choose(key, [Candidate(n, load[n]) for n in ENGINES], policy, rate=25.0)
        assert decision is not None and decision.kind == "affinity"
        load[decision.engine] += 1
    top3 = rank(key, ENGINES)[:3]
    assert {n: load[n] for n in top3} == dict.fromkeys(top3, 10)
    assert sum(load.values()) == 30


def test_past_the_spill_queue_the_least_loaded_engine_takes_it() -> None:
    key = KEYS[3]
    first, *others = rank(key, ENGINES)
    policy = Policy(spill_queue=8)
    loads = {n: 5 for n in others} | {others[2]: 1}
    at = choose(key, [Candidate(first, 8), *(Candidate(n, loads[n]) for n in others)], policy)
    assert at is not None and (at.engine, at.kind) == (first, "affinity")  # at the limit: stays
    over = choose(key, [Candidate(first, 9), *(Candidate(n, loads[n]) for n in others)], policy)
    assert over is not None and (over.engine, over.kind) == (others[2], "spill")
    # everyone as busy: nowhere better to go
    full = choose(key, [Candidate(n, 50) for n in ENGINES], policy)
    assert full is not None and (full.engine, full.kind) == (first, "affinity")


def test_least_loaded_breaks_ties_by_the_versions_ranking() -> None:
    policy = Policy(mode="least-loaded")
    for k in KEYS[:50]:
        d = choose(k, idle(ENGINES), policy)
        assert d is not None and (d.engine, d.kind) == (rank(k, ENGINES)[0], "least_loaded")
    loads = [Candidate(n, 3) for n in ENGINES[:-1]] + [Candidate(ENGINES[-1], 2)]
    d = choose(KEYS[0], loads, policy)
    assert d is not None and d.engine == ENGINES[-1]


def test_random_ignores_the_version() -> None:
    rng = random.Random(5)
    picks = Counter()
    for _ in range(5000):
        d = choose(KEYS[0], idle(ENGINES), Policy(mode="random"), rng=rng)
        assert d is not None and d.kind == "random"
        picks[d.engine] += 1
    assert set(picks) == set(ENGINES) and min(picks.values()) > 800


def test_no_candidate_no_decision() -> None:
    for mode in ("affinity", "random", "least-loaded"):
        assert choose(KEYS[0], [], Policy(mode=mode)) is None  # type: ignore[arg-type]


def test_the_rate_meter_decays_and_stays_bounded() -> None:
    now = [0.0]
    meter = RateMeter(window=10.0, max_keys=3, clock=lambda: now[0])
    for _ in range(10):
        meter.hit("a")
    assert meter.rate("a") == pytest.approx(1.0)
    now[0] = 10.0
    assert meter.rate("a") == pytest.approx(1.0 / 2.718281828, rel=1e-6)
    for _ in range(3000):  # a steady 50 requests a second, for 6 windows
        now[0] += 0.02
        rate = meter.hit("a")
    assert rate == pytest.approx(50.0, rel=0.02)
    assert replicas(rate, Policy(replica_rps=20.0, max_replicas=3), 5) == 3
    for key in ("b", "c", "d"):
        meter.hit(key)
    assert meter.rate("a") == 0.0  # the least recently hit went first
    assert meter.rate("d") > 0.0
