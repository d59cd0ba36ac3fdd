from __future__ import annotations

import pytest

from workers.training.rehearsal import pick, rehearsal_count


def test_count_makes_the_ratio_a_share_of_the_mix() -> None:
    assert rehearsal_count(144, 0.0) == 0
    assert rehearsal_count(144, 0.5) == 144
    assert rehearsal_count(144, 0.25) == 48
    assert rehearsal_count(100, 0.34) == 52
    with pytest.raises(ValueError):
        rehearsal_count(10, 1.0)


def test_pick_is_seeded_and_cycles_a_small_pool() -> None:
    rows = [{"prompt": str(i), "completion": "x"} for i in range(5)]
    assert pick(rows, 3, seed=1) == pick(rows, 3, seed=1)
    assert pick(rows, 3, seed=1) != pick(rows, 3, seed=2)
    many = pick(rows, 12, seed=0)
    assert len(many) == 12 and all(many.count(r) in (2, 3) for r in rows)
    assert len({r["prompt"] for r in many[:5]}) == 5  # every row once before any twice
    assert pick(rows, 0, seed=0) == [] and pick([], 4, seed=0) == []
