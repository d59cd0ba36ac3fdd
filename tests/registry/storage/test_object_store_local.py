"""Behaviours specific to the local-folder object store: a missing root, staying inside the
root, and cleanup when a commit fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from registry.storage import LocalObjectStore, StorageError, StorageUnavailable, open_store
from tests.registry.storage.conftest import all_keys, write_in_chunks


def test_ping_local_missing_root(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/missing")
    with pytest.raises(StorageUnavailable, match="does not exist"):
        store.ping()
    with pytest.raises(StorageUnavailable):
        store.writer()


def test_local_root_escape_impossible(local_store: LocalObjectStore, tmp_path: Path) -> None:
    store = local_store
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    os.symlink(outside, Path(store.root) / "link")
    with pytest.raises(ValueError, match="outside"):
        store.get_bytes("link/secret")
    with pytest.raises(ValueError, match="outside"):
        store.put_bytes("link/new", b"x")
    with pytest.raises(ValueError, match="outside"):
        write_in_chunks(store, b"x", "link/new2")
    with pytest.raises(ValueError):
        store.get_bytes("../outside/secret")
    assert sorted(os.listdir(outside)) == ["secret"]
    assert store.path("a/b") == os.path.join(os.path.realpath(tmp_path / "store"), "a", "b")


def test_local_commit_failure_cleans_up(local_store: LocalObjectStore) -> None:
    store = local_store
    store.put_bytes("a", b"file, not a directory")
    with pytest.raises(StorageError):
        write_in_chunks(store, b"x", "a/b")
    assert all_keys(store) == ["a"]
