"""Memory an upload can take: de-duplication digests are compact, rows per dataset bounded."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from registry.datasets.validation import DatasetValidator, DigestSet
from tests.conftest import World
from tests.registry.datasets.test_datasets_api import assert_nothing_stored, chat, upload


def test_digest_set_behaves_as_a_set() -> None:
    rng = random.Random(7)
    keys = [rng.getrandbits(64) or 1 for _ in range(5000)]
    keys += keys[:700]  # duplicates
    table, reference = DigestSet(capacity=4), set()
    for key in keys:
        assert table.add(key) == (key not in reference)
        reference.add(key)
    assert len(table) == len(reference)
    with pytest.raises(ValueError):
        table.add(0)


def test_dedup_memory_per_row_is_small() -> None:
    rows = 200_000
    data = b"".join(
        b'{"prompt":"q%d","completion":"a"}\n' % i for i in range(rows)
    )  # ~33 bytes a row: the old 16-byte-digest set held more than twice the upload
    validator = DatasetValidator()
    tracemalloc.start()
    try:
        for start in range(0, len(data), 1 << 16):
            validator.feed(data[start : start + (1 << 16)])
        validator.finish()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert validator.report.rows == rows
    assert current / rows < 40, f"{current / rows:.0f} bytes a row kept"
    assert peak / rows < 60, f"{peak / rows:.0f} bytes a row at the peak"


def test_rows_over_the_limit_are_413_while_streaming(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(world.stack.app.state.settings, "dataset_max_rows", 50)
    acme = world.tenant("acme")
    assert upload(world, acme, b"".join(chat(i) for i in range(50)), name="ok").status_code == 201
    resp = upload(world, acme, b"".join(chat(i) for i in range(51)), name="big")
    assert resp.status_code == 413, resp.text
    assert (
        "50 rows" in resp.json()["detail"] and "LORAPLEX_DATASET_MAX_ROWS" in resp.json()["detail"]
    )
    # duplicates are not kept, so they do not count
    dupes = b"".join(chat(i % 50) for i in range(200))
    assert upload(world, acme, dupes, name="dupes").status_code == 201


def test_nothing_stored_over_the_row_limit(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(world.stack.app.state.settings, "dataset_max_rows", 10)
    acme = world.tenant("acme")
    resp = upload(world, acme, b"".join(chat(i) for i in range(5000)))
    assert resp.status_code == 413
    assert_nothing_stored(world)
