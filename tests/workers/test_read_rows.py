"""Training inputs stream dataset rows: never the file's bytes and its parsed rows at once."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from pathlib import Path

import pytest

from registry.base_models.local_copy import DigestMismatch
from registry.models import Dataset
from registry.storage import LocalObjectStore
from workers.inputs import read_rows


def stored(tmp_path: Path, rows: int) -> tuple[LocalObjectStore, Dataset, bytes]:
    data = (
        b"".join(
            json.dumps({"prompt": f"question {i} " + "x" * 60, "completion": "a"}).encode()
            + (b"\r\n" if i % 7 == 0 else b"\n")
            for i in range(rows)
        )
        + b'{"prompt": "last", "completion": "no newline"}'
    )
    store = LocalObjectStore(str(tmp_path / "store"), create=True)
    store.put_bytes("d.jsonl", data)
    sha = hashlib.sha256(data).hexdigest()
    return store, Dataset(name="d", version=1, object_key="d.jsonl", sha256=sha), data


def test_rows_are_streamed_not_held_twice(tmp_path: Path) -> None:
    store, dataset, data = stored(tmp_path, 200_000)  # ~16 MB
    tracemalloc.start()
    try:
        rows = read_rows(store, dataset)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(rows) == 200_001 and rows[-1] == {"prompt": "last", "completion": "no newline"}
    assert rows == [json.loads(line) for line in data.splitlines()]
    # the old read held the bytes and their split lines (~2x the file) on top of the rows
    assert peak - kept < len(data) // 2, (peak - kept, len(data))


def test_a_changed_file_is_refused(tmp_path: Path) -> None:
    store, dataset, data = stored(tmp_path, 10)
    store.put_bytes("d.jsonl", data.replace(b"question 3", b"question 4"))
    with pytest.raises(DigestMismatch, match="stored sha256"):
        read_rows(store, dataset)
