"""One set of behaviours, checked against both object store implementations (the `store`
fixture in conftest.py), plus key validation and `open_store` URL parsing.
"""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Callable, Generator
from pathlib import Path

import pytest

from registry.storage import (
    ObjectNotFound,
    ObjectStore,
    S3ObjectStore,
    open_store,
    validate_key,
)
from tests.registry.storage.conftest import (
    MULTIPART,
    PART_SIZE,
    all_keys,
    blob,
    count_calls,
    pending_uploads,
    write_in_chunks,
)


def test_put_get_small(store: ObjectStore) -> None:
    key = "tenants/t1/datasets/sha256/abc.jsonl"
    stored = store.put_bytes(key, b'{"a": 1}\n')
    assert stored.key == key
    assert stored.size == 9
    assert stored.sha256 == hashlib.sha256(b'{"a": 1}\n').hexdigest()
    assert store.get_bytes(key) == b'{"a": 1}\n'
    assert store.size(key) == 9
    assert store.exists(key)
    assert all_keys(store) == [key]


def test_put_bytes_replaces(store: ObjectStore) -> None:
    store.put_bytes("a/b", b"one")
    store.put_bytes("a/b", b"two!")
    assert store.get_bytes("a/b") == b"two!"
    assert all_keys(store) == ["a/b"]


@pytest.mark.parametrize("size", [0, 1, PART_SIZE - 1, PART_SIZE, PART_SIZE + 1, MULTIPART])
def test_writer_round_trip(store: ObjectStore, size: int) -> None:
    data = blob(size)
    parts = count_calls(store, "UploadPart")
    stored = write_in_chunks(store, data, "objects/x.bin", chunk=(1 << 20) + 7)
    assert stored.size == size
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert store.get_bytes("objects/x.bin") == data
    assert store.size("objects/x.bin") == size
    assert all_keys(store) == ["objects/x.bin"]
    assert pending_uploads(store) == []
    if isinstance(store, S3ObjectStore):  # a multipart upload only from one full part on
        assert len(parts) == (-(-size // PART_SIZE) if size >= PART_SIZE else 0)


def test_multipart_20mb(store: ObjectStore) -> None:
    data = os.urandom(20 << 20)
    parts = count_calls(store, "UploadPart")
    stored = write_in_chunks(store, data, lambda h: f"blobs/sha256/{h}")
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert store.get_bytes(stored.key) == data
    if isinstance(store, S3ObjectStore):
        assert len(parts) == 4
        raw = store.client.list_objects_v2(Bucket=store.bucket)["Contents"]
        assert [o["Key"] for o in raw] == [f"store-prefix/{stored.key}"]


def test_content_addressed_commit(store: ObjectStore) -> None:
    seen: list[str] = []

    def key_for(digest: str) -> str:
        seen.append(digest)
        return f"tenants/t1/datasets/sha256/{digest}.jsonl"

    stored = write_in_chunks(store, b"line\n" * 1000, key_for)
    digest = hashlib.sha256(b"line\n" * 1000).hexdigest()
    assert seen == [digest]
    assert stored.key == f"tenants/t1/datasets/sha256/{digest}.jsonl"
    assert store.get_bytes(stored.key) == b"line\n" * 1000


@pytest.mark.parametrize("size", [100, MULTIPART])
def test_commit_to_existing_key_dedups(store: ObjectStore, size: int) -> None:
    data = blob(size)
    first = write_in_chunks(store, data, lambda h: f"cas/{h}")
    copies = count_calls(store, "CopyObject")
    second = write_in_chunks(store, data, lambda h: f"cas/{h}")
    assert second == first
    assert all_keys(store) == [first.key]
    assert pending_uploads(store) == []
    assert copies == []  # the existing object was kept, not copied over
    # commit never replaces an object: the key is taken to imply the content
    write_in_chunks(store, b"other", first.key)
    assert store.get_bytes(first.key) == data


@pytest.mark.parametrize("size", [100, MULTIPART])
def test_abort_leaves_nothing(store: ObjectStore, size: int) -> None:
    w = store.writer()
    w.write(blob(size))
    w.abort()
    w.abort()  # idempotent
    assert all_keys(store) == []
    assert pending_uploads(store) == []
    with pytest.raises(RuntimeError):
        w.write(b"more")
    with pytest.raises(RuntimeError):
        w.commit("k")


@pytest.mark.parametrize("size", [100, MULTIPART])
def test_exception_inside_with_leaves_nothing(store: ObjectStore, size: int) -> None:
    with pytest.raises(KeyError), store.writer() as w:
        w.write(blob(size))
        raise KeyError("boom")
    assert all_keys(store) == []
    assert pending_uploads(store) == []


def test_leaving_with_uncommitted_leaves_nothing(store: ObjectStore) -> None:
    with store.writer() as w:
        w.write(blob(MULTIPART))
    assert all_keys(store) == []
    assert pending_uploads(store) == []


@pytest.mark.parametrize("size", [100, MULTIPART])
def test_nothing_visible_before_commit(store: ObjectStore, size: int) -> None:
    with store.writer() as w:
        w.write(blob(size))
        assert not store.exists("final/key")
        assert list(store.list_keys("final/")) == []
        assert all(k.startswith("_tmp/") for k in store.list_keys())
        w.commit("final/key")
    assert store.exists("final/key")
    assert all_keys(store) == ["final/key"]


def test_iter_chunks_streams(store: ObjectStore) -> None:
    data = blob(3 * (1 << 20) + 5)
    store.put_bytes("big", data)
    chunks = list(store.iter_chunks("big", chunk_size=1 << 20))
    assert [len(c) for c in chunks] == [1 << 20] * 3 + [5]
    assert b"".join(chunks) == data
    stream = store.iter_chunks("big", chunk_size=1000)
    assert next(stream) == data[:1000]
    assert isinstance(stream, Generator)
    stream.close()  # stopping early releases the file or connection


def test_missing_key(store: ObjectStore) -> None:
    store.put_bytes("dir/present", b"x")
    with pytest.raises(ObjectNotFound):
        store.get_bytes("dir/absent")
    with pytest.raises(ObjectNotFound):
        store.iter_chunks("dir/absent")  # raises at call time, before iteration
    with pytest.raises(ObjectNotFound):
        store.get_bytes("dir")  # a "directory" is not an object
    assert store.size("dir/absent") is None
    assert not store.exists("dir/absent")
    assert not store.exists("dir")
    store.delete("dir/absent")
    store.delete("dir/present")
    store.delete("dir/present")
    assert all_keys(store) == []


def test_list_keys_prefix(store: ObjectStore) -> None:
    for key in ["tenants/a/x", "tenants/a/y/z", "tenants/ab/x", "tenants/b/x", "other"]:
        store.put_bytes(key, b"1")
    assert sorted(store.list_keys("tenants/a/")) == ["tenants/a/x", "tenants/a/y/z"]
    assert sorted(store.list_keys("tenants/a")) == ["tenants/a/x", "tenants/a/y/z", "tenants/ab/x"]
    assert list(store.list_keys("nothing/")) == []
    assert len(all_keys(store)) == 5


BAD_KEYS = ["", "/abs", "a//b", "a/", "a/../b", "..", "./a", "a\\b", "a\nb", "a\x00b", "x" * 1025]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_invalid_keys_rejected(store: ObjectStore, key: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: store.put_bytes(key, b"x"),
        lambda: store.get_bytes(key),
        lambda: store.iter_chunks(key),
        lambda: store.size(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            call()
    with store.writer() as w:
        w.write(b"x")
        with pytest.raises(ValueError):
            w.commit(key)
    assert all_keys(store) == []
    assert pending_uploads(store) == []


def test_reserved_tmp_prefix_and_bad_prefixes(store: ObjectStore) -> None:
    with pytest.raises(ValueError):
        store.put_bytes("_tmp/x", b"x")
    with pytest.raises(ValueError):
        write_in_chunks(store, b"x", lambda h: f"_tmp/{h}")
    for prefix in ["/", "../", "a//", "a\\"]:
        with pytest.raises(ValueError):
            list(store.list_keys(prefix))
    assert all_keys(store) == []


def test_validate_key_accepts_ordinary_keys() -> None:
    for key in ["a", "tenants/7/datasets/sha256/ab12.jsonl", "a b/ünï/.hidden", "x" * 1024]:
        assert validate_key(key) == key


@pytest.mark.parametrize("chunk_size", [1 << 20, 3 << 20])
def test_memory_stays_flat(store: ObjectStore, chunk_size: int) -> None:
    """64 MiB through the writer: the S3 writer holds the parts in flight and the one filling
    (5 MiB each), the local one nothing."""
    chunk = os.urandom(chunk_size)
    count = (64 << 20) // chunk_size
    tracemalloc.start()
    try:
        with store.writer() as w:
            for _ in range(count):
                w.write(chunk)
            stored = w.commit(lambda h: f"blobs/{h}")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored.size == count * chunk_size
    # A copy of each incoming chunk, or parts queued without bound, would break this.
    buffers = store.concurrency + 1 if isinstance(store, S3ObjectStore) else 1
    assert peak < (buffers + 0.5) * PART_SIZE, f"peak {peak / 2**20:.1f} MiB"
    expected = hashlib.sha256()
    for _ in range(count):
        expected.update(chunk)
    assert stored.sha256 == expected.hexdigest()


def test_ping_ok(store: ObjectStore) -> None:
    store.ping()


@pytest.mark.parametrize(
    "url",
    [
        "http://x/y",
        "s3:///prefix",
        "file://host/x",
        "file:relative",
        "s3://b?x=1",
        "s3://bkt/a/../b",
    ],
)
def test_open_store_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        open_store(url)


def test_open_store_urls(tmp_path: Path) -> None:
    assert open_store(f"file://{tmp_path}/").url == f"file://{os.path.realpath(tmp_path)}"
    s3 = open_store("s3://bucket/some/prefix/", s3_region="us-east-1")
    assert isinstance(s3, S3ObjectStore)
    assert (s3.url, s3.bucket, s3.prefix) == ("s3://bucket/some/prefix", "bucket", "some/prefix/")
    with pytest.raises(ValueError, match="part_size"):
        open_store("s3://bucket", part_size=1 << 20)
