"""Rehearsal: a share of rows from the base model's own kind of data mixed into a tenant's
training, so an adapter trained hard keeps what the base model could do."""

from __future__ import annotations

import random
from typing import Any


def rehearsal_count(tenant_rows: int, ratio: float) -> int:
    """How many rehearsal rows make them `ratio` of the mixed training set."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError("the rehearsal ratio must be in [0, 1)")
    return round(tenant_rows * ratio / (1.0 - ratio))


def pick(rows: list[dict[str, Any]], n: int, *, seed: int) -> list[dict[str, Any]]:
    """`n` rows drawn without replacement in seeded order, cycling through the pool again (in a
    new order) when it is smaller than `n`."""
    if n <= 0 or not rows:
        return []
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    while len(out) < n:
        order = list(rows)
        rng.shuffle(order)
        out += order[: n - len(out)]
    return out
